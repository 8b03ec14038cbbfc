"""Which names and values are credentials, and masking them: the one rule for logs, files and job requests.

Standard library only, below every other module: the contract module, the config, the launcher and the
job script all ask the same question ("is this a secret?") and must get the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Any name with a credential word as a whole part: HF_TOKEN, AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID,
# `hub_token`, WANDB_API_KEY, MLFLOW_TRACKING_PASSWORD, GIT_CREDENTIALS; but not `max_new_tokens`.
_SECRET_PART = re.compile(
    r"(^|[^a-z0-9])(token|secret|password|passwd|credentials?|(api|access|private)[_-]?key)([^a-z0-9]|$)",
    re.IGNORECASE,
)
# A name for where a secret is kept (`HF_TOKEN_SECRET_ID`), not the secret itself.
_SECRET_REFERENCE = re.compile(r"_SECRET_(ID|ARN)$", re.IGNORECASE)
# Values that are credentials whatever they are called: Hugging Face tokens, AWS access key ids.
_SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b|\b(AKIA|ASIA)[0-9A-Z]{16}\b")
MIN_SECRET_LENGTH = 8  # shorter values are no credential, and masking them would garble ordinary text
MASK = "***"


def is_secret_name(name: str) -> bool:
    """True for a name whose value is a credential; a secret's id or ARN is not one."""
    return bool(_SECRET_PART.search(name)) and not _SECRET_REFERENCE.search(name)


def looks_like_secret(value: str) -> bool:
    """True for a value shaped like a Hugging Face token or an AWS access key id."""
    return bool(_SECRET_VALUE.search(value))


class Redactor:
    """Masks every secret value found in the environment, in text and in raw bytes (child output)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(values, key=len, reverse=True)  # longest first: one may contain another
        self._secret_bytes = [s.encode() for s in self._secrets]
        self._longest = max(map(len, self._secret_bytes), default=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        return cls(value for name, value in env.items() if is_secret_name(name))

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def bytes(self, data: bytes) -> bytes:
        for secret in self._secret_bytes:
            data = data.replace(secret, MASK.encode())
        return data

    def split_safe(self, data: bytes) -> tuple[bytes, bytes]:
        """(redacted bytes safe to emit, tail to hold back because it may be the start of a secret)."""
        data = self.bytes(data)
        for hold in range(min(len(data), self._longest - 1), 0, -1):
            tail = data[-hold:]
            if any(s.startswith(tail) for s in self._secret_bytes):
                return data[:-hold], tail
        return data, b""

    def value(self, value: Any) -> Any:
        """A (decoded) value with secrets masked inside any string, list or dict."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def hyperparameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Hyperparameters fit to echo: values of secret-named keys masked whole, env secrets anywhere."""
        return {k: MASK if is_secret_name(k) else self.value(v) for k, v in values.items()}
