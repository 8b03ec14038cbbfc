#!/bin/sh
# Image entrypoint, kept to plain POSIX sh so tests run this very file outside the image.
#   (no argument) | train [ARGS]   -> grpo-rlvr launch [ARGS]   (SageMaker runs `IMAGE train`; SDK local
#                                      mode and `docker compose up` may pass nothing)
#   prepare|evaluate|grade|env|launch ARGS -> grpo-rlvr <that subcommand> ARGS
#   anything else (bash, python, grpo-rlvr ...) -> run as given
# Overridable for tests: GRPO_RLVR_BIN (the console script), GRPO_RLVR_PYTHON, SAGEMAKER_BASE_DIR.
set -eu

grpo_rlvr=${GRPO_RLVR_BIN:-grpo-rlvr}
base_dir=${SAGEMAKER_BASE_DIR:-/opt/ml}

# A failure before the launcher starts still leaves SageMaker's failure file, as the launcher would.
fail() {
    mkdir -p "$base_dir/output"
    printf '%s\n' "$1" > "$base_dir/output/failure"
    printf 'entrypoint: %s\n' "$1" >&2
    exit 1
}

# Gated models: the job carries only the secret's id; the token itself lives in this process tree.
if [ -n "${HF_TOKEN_SECRET_ID:-}" ] && [ -z "${HF_TOKEN:-}" ]; then
    HF_TOKEN=$("${GRPO_RLVR_PYTHON:-python3}" -c '
import os, boto3
secret = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["HF_TOKEN_SECRET_ID"])
print(secret["SecretString"].strip(), end="")
') || fail "cannot read the Hugging Face token from Secrets Manager secret ${HF_TOKEN_SECRET_ID}"
    [ -n "$HF_TOKEN" ] || fail "Secrets Manager secret ${HF_TOKEN_SECRET_ID} is empty"
    export HF_TOKEN
fi

[ "$#" -gt 0 ] || set -- train
case "$1" in
    train)
        shift
        exec "$grpo_rlvr" launch "$@"
        ;;
    prepare | evaluate | grade | env | launch)
        exec "$grpo_rlvr" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
