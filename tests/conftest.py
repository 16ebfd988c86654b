"""Shared fixtures: real servers on loopback, real stores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from servers import BackgroundServer
from xvckit.config import from_mapping
from xvckit.gateway import Gateway
from xvckit.store import Store

MASTER_KEY = "xvc-test-master-key"
IN_CI = os.environ.get("CI") == "true"


def require_service(name: str, reason: str) -> None:
    """Skip with a visible reason on a user's machine; in CI a missing service fails."""
    if IN_CI:
        pytest.fail(f"{name} is required when CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture
def make_gateway(tmp_path) -> Iterator[Callable[..., BackgroundServer]]:
    """Start gateways for a config mapping; each is stopped after the test."""
    with ExitStack() as stack:

        def start(config: dict, master_key: str = MASTER_KEY) -> BackgroundServer:
            config = {"storage": {"url": f"sqlite:///{tmp_path}/xvckit.db"}, **config}
            loaded = from_mapping(config)
            gateway = Gateway(loaded, master_key, Store.open(loaded.storage.url))
            return stack.enter_context(BackgroundServer(gateway))

        yield start


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("XVCKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        Store.open(url).ping()
    except Exception as exc:  # any failure to connect means "not here"
        require_service("PostgreSQL", f"{url}: {exc}")
    return url
