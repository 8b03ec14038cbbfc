"""Tests against the built image and a real engine: `make image-test` builds the image, then runs these.

Everything under tests/image carries the `image` marker, which plain `make test` deselects. The image
is $IMAGE; the docker client is $DOCKER (Compose v2 reachable as `docker compose`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine import Compose

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.image)


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("IMAGE")
    if not name:
        pytest.fail("set IMAGE to the image under test (make image-test does)")
    return name


@pytest.fixture(scope="session")
def docker(image: str) -> str:
    client = os.environ.get("DOCKER", "docker")
    found = subprocess.run([client, "image", "inspect", image], capture_output=True, text=True)
    assert found.returncode == 0, f"{client} sees no image {image}: {found.stderr.strip()}"
    return client


@pytest.fixture(scope="module")
def compose_factory(
    docker: str, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Compose]]:
    """Makes isolated compose projects; takes each one down, volumes included, at the end."""
    made: list[Compose] = []

    def make(name: str) -> Compose:
        project = Compose(docker, image, tmp_path_factory.mktemp(name))
        made.append(project)
        return project

    yield make
    for project in made:
        project("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180)
