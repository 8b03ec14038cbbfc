"""TRL's `GRPOConfig` as this project's runs hold it: every form of it that gets written is secret-free.

The trainer writes its arguments into files: pickled as `training_args.bin` in every checkpoint, and
through `to_dict` into MLflow params and TensorBoard text. A setting may hold a credential (`hub_token`)
or, by mistake, the value of one from the environment (`run_name: $HF_TOKEN`). Masking here, where the
arguments are turned into data, covers every writer at once; the live object keeps the real values.
"""

from __future__ import annotations

import os
from typing import Any

from trl import GRPOConfig

from grpo_rlvr.redact import Redactor, is_secret_name


class GRPOArgs(GRPOConfig):
    __doc__ = GRPOConfig.__doc__

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (training_args.bin): secret-named fields emptied, environment secrets masked."""
        redactor = Redactor.from_env(os.environ)
        return {k: None if is_secret_name(k) else redactor.value(v) for k, v in self.__dict__.items()}

    def to_dict(self) -> dict[str, Any]:
        """As reporters log it: transformers already hides `*_token` fields; environment secrets too."""
        return Redactor.from_env(os.environ).value(super().to_dict())
