#!/usr/bin/env bash
# Push the local training image to Amazon ECR; safe to re-run (the repository is created only if missing,
# and pushing layers ECR already holds transfers nothing). Prints the pushed image URI last.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/push_ecr.sh [--image NAME:TAG] [--repository NAME] [--tag TAG] [--region REGION]
                          [--registry HOST[:PORT]]

  --image       local image to push                  (default: grpo-rlvr:latest)
  --repository  ECR repository, created if missing    (default: grpo-rlvr)
  --tag         tag in ECR                            (default: the current git commit, else "dev")
  --region      AWS region                            (default: $AWS_REGION, else the AWS CLI's region)
  --registry    registry to log in and push to        (default: $ECR_REGISTRY, else the account's
                                                        ACCOUNT.dkr.ecr.REGION.amazonaws.com)

Needs the AWS CLI v2 and docker, with credentials allowed ecr:DescribeRepositories, ecr:CreateRepository,
ecr:GetAuthorizationToken and the ecr push actions. The last line printed is the image URI to pass to
scripts/launch_sagemaker.py --image-uri.

The AWS CLI's own endpoint settings apply (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_STS),
so with --registry the script also works against an ECR-compatible emulator and a local registry.
EOF
}

image=grpo-rlvr:latest
repository=grpo-rlvr
tag=$(git rev-parse --short HEAD 2>/dev/null || echo dev)
region=${AWS_REGION:-}
registry=${ECR_REGISTRY:-}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --image) image=$2; shift 2 ;;
        --repository) repository=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --region) region=$2; shift 2 ;;
        --registry) registry=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "push_ecr.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

fail() { echo "push: $*" >&2; exit 1; }

[ -n "$region" ] || region=$(aws configure get region || true)
[ -n "$region" ] || { echo "push_ecr.sh: no region: pass --region or set AWS_REGION" >&2; exit 2; }

if [ -z "$registry" ]; then
    account=$(aws sts get-caller-identity --query Account --output text) ||
        fail "aws sts get-caller-identity failed: no usable AWS credentials"
    registry="${account}.dkr.ecr.${region}.amazonaws.com"
fi
uri="${registry}/${repository}:${tag}"

if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
    echo "creating ECR repository ${repository} in ${region}" >&2
    aws ecr create-repository --region "$region" --repository-name "$repository" \
        --image-scanning-configuration scanOnPush=true >/dev/null ||
        fail "aws ecr create-repository ${repository} failed"
fi

password=$(aws ecr get-login-password --region "$region") || fail "aws ecr get-login-password failed"
printf '%s' "$password" | docker login --username AWS --password-stdin "$registry" >&2 ||
    fail "docker login to ${registry} failed"
docker tag "$image" "$uri" || fail "docker tag ${image} ${uri} failed (is ${image} built?)"
docker push "$uri" >&2 || fail "docker push to ${registry} failed"
echo "$uri"
