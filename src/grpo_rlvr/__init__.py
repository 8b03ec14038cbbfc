"""GRPO with verifiable rewards, packaged for SageMaker and Docker (see README.md)."""

from grpo_rlvr.notices import quiet_notices

quiet_notices()
