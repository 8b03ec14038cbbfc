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
# Values that are credentials whatever they are called: Hugging Face tokens, AWS access key ids, and
# the password in a URL's userinfo (`https://user:password@host`; a bare `user@` is no credential).
_SECRET_VALUE = re.compile(
    r"\bhf_[A-Za-z0-9]{30,}\b|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|(?<=://)(?:[^/?#@\s:]*):[^/?#@\s]+(?=@)"
)
MIN_SECRET_LENGTH = 8  # shorter values are no credential, and masking them would garble ordinary text
MASK = "***"


def is_secret_name(name: str) -> bool:
    """True for a name whose value is a credential; a secret's id or ARN is not one."""
    return bool(_SECRET_PART.search(name)) and not _SECRET_REFERENCE.search(name)


def looks_like_secret(value: str) -> bool:
    """True for a value shaped like a Hugging Face token, an AWS access key id or a URL with a password."""
    return bool(_SECRET_VALUE.search(value))


def find_secret(value: Any, where: str = "") -> str | None:
    """Where in a (decoded) value, at any depth, a secret-named key or a secret-shaped string sits
    (`where` names the value itself; `key.inner[2]` a place inside it); None when nowhere."""
    if isinstance(value, str):
        return where if looks_like_secret(value) else None
    if isinstance(value, Mapping):
        places = ((f"{where}.{k}" if where else str(k), k, v) for k, v in value.items())
        found = (place if is_secret_name(str(k)) and v else find_secret(v, place) for place, k, v in places)
    elif isinstance(value, list | tuple):
        found = (find_secret(v, f"{where}[{i}]") for i, v in enumerate(value))
    else:
        return None
    return next((place for place in found if place), None)


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
        """Environment secrets and secret-shaped values (`looks_like_secret`) masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _SECRET_VALUE.sub(MASK, text)

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
        """A (decoded) value fit to show, at every depth: the value of a secret-named key masked whole
        (unless empty), secrets masked inside every string; lists and tuples come back as lists."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, Mapping):
            return {k: MASK if is_secret_name(str(k)) and v else self.value(v) for k, v in value.items()}
        return value
