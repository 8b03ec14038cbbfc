"""The Hugging Face Hub, asked once and quickly before anything is fetched from it.

Without network, transformers and datasets retry a hub id for a minute or more and then fail with a
multi-page traceback. One metadata request with a short timeout answers the same question in seconds,
so a hub id that cannot be used is one line naming it and `HF_HUB_OFFLINE`. With `HF_HUB_OFFLINE` set,
a model must already be in the local cache (as transformers will then require), and no request is made.
"""

from __future__ import annotations

import functools
import os

HUB_TIMEOUT_S = 10.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubUnavailable(ValueError):
    """A hub id that cannot be fetched here; the message names it and what to do instead."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: then a hub id can only come from the local cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def check_model(repo_id: str) -> None:
    """Raise HubUnavailable unless model `repo_id` can be fetched (or, offline, is in the local cache)."""
    from huggingface_hub import try_to_load_from_cache

    if hub_offline():
        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return
        raise HubUnavailable(
            f"{repo_id} is a model hub id, but HF_HUB_OFFLINE is set and it is not in the local Hugging Face "
            "cache: pass a local model folder, or download it once with network"
        )
    _ask(repo_id, "model")


def check_dataset(repo_id: str) -> None:
    """Raise HubUnavailable unless dataset `repo_id` can be fetched; never with HF_HUB_OFFLINE set."""
    if hub_offline():
        raise HubUnavailable(f"{repo_id} is a dataset hub id, but HF_HUB_OFFLINE is set")
    _ask(repo_id, "dataset")


# What to do without network, by kind: transformers can load a cached model offline; datasets cannot here.
_WITHOUT_NETWORK = {
    "model": "pass a local model folder, or set HF_HUB_OFFLINE=1 to load the copy in the local cache",
    "dataset": "pass a local file or folder (HF_HUB_OFFLINE=1 makes a hub id fail at once)",
}


@functools.cache  # only success is remembered: a later call asks again after a failure
def _ask(repo_id: str, kind: str) -> None:
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().repo_info(repo_id, repo_type=kind, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError as err:
        raise HubUnavailable(
            f"{repo_id}: no such {kind} on the Hugging Face Hub (a private or gated one needs HF_TOKEN), "
            "and no local path of that name"
        ) from err
    except (OSError, httpx.HTTPError) as err:  # no network, DNS, a timeout, a server error (HfHubHTTPError)
        raise HubUnavailable(
            f"{repo_id}: the Hugging Face Hub cannot be reached for this {kind} id ({type(err).__name__}); "
            f"without network, {_WITHOUT_NETWORK[kind]}"
        ) from err
