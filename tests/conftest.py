"""Shared fixtures: real servers on loopback, real stores."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from servers import BackgroundServer
from xvckit.config import from_mapping
from xvckit.gateway import Gateway
from xvckit.http_server import HttpServer
from xvckit.stack import gateway_app, knowledge_extensions
from xvckit.store import Store

# tiktoken downloads its encodings on first use; the shared cache beside the checkout has them.
_TIKTOKEN_CACHE = Path(__file__).resolve().parents[2] / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN_CACHE.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN_CACHE)

# The user's home, data, cache and config folders and xvckit settings stay out of the tests, and
# the tests out of them (a store, secret.key or audit head left in ~/.local/share/xvckit), for the
# whole session and every process it starts: a test wanting one sets its own.
_HOME = Path(tempfile.mkdtemp(prefix="xvckit-tests-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
for _name in ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
    os.environ[_name] = str(_HOME / _name.lower())
for _name in ("XVCKIT_CONFIG", "XVCKIT_DATA_DIR", "XVCKIT_MASTER_KEY", "XVCKIT_SECRET_KEY"):
    os.environ.pop(_name, None)

pytest_plugins = ["sim_fixture", "figures"]

MASTER_KEY = "xvc-test-master-key-0123456789abcdef"  # 32+ characters, as a master key must be
REDIS_URL = os.environ.get("XVCKIT_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def require_service(name: str, reason: str) -> None:
    """Skip with a visible reason on a user's machine; in CI a missing service fails."""
    if IN_CI:
        pytest.fail(f"{name} is required when CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture(scope="session")
def tiktoken_encodings() -> None:
    """Exact token counts need tiktoken's encodings: from the shared cache, or downloaded."""
    from xvckit.context.tokens import encoding
    from xvckit.errors import UserError

    try:
        for name in ("o200k_base", "cl100k_base"):
            encoding(name)
    except UserError as exc:
        require_service("tiktoken encodings", str(exc))


def _gateway_starter(stack: ExitStack, folder: Path) -> Callable[..., BackgroundServer]:
    """Starts a gateway for a config mapping (its store in `folder`), stopped with `stack`."""

    def start(
        config: dict,
        master_key: str = MASTER_KEY,
        storage_url: str | None = None,
        knowledge: bool = False,
        everything: bool = False,
    ) -> BackgroundServer:
        """`knowledge`: with the prompt routes and /mcp; `everything`: also /ui, the monitor and
        the repository KPIs, as `xvckit up` serves them (`stack.gateway_app`)."""
        config = {"storage": {"url": storage_url or f"sqlite:///{folder}/xvckit.db"}, **config}
        loaded = from_mapping(config)
        store = Store.open(loaded.storage.url)
        if everything:
            gateway = gateway_app(loaded, master_key, store)
        else:
            gateway = Gateway(loaded, master_key, store, knowledge_extensions(store) if knowledge else None)
        server = stack.enter_context(BackgroundServer(gateway, server=HttpServer))
        server.gateway, server.store = gateway, gateway.store
        return server

    return start


@pytest.fixture
def make_gateway(tmp_path) -> Iterator[Callable[..., BackgroundServer]]:
    """Start gateways for a config mapping; each is stopped after the test."""
    with ExitStack() as stack:
        yield _gateway_starter(stack, tmp_path)


@pytest.fixture(scope="module")
def make_module_gateway(tmp_path_factory) -> Iterator[Callable[..., BackgroundServer]]:
    """The same for the tests of a module to share (a gateway's stop takes a second); each
    module's gateways have a folder of their own."""
    with ExitStack() as stack:
        yield _gateway_starter(stack, tmp_path_factory.mktemp("gateway"))


@pytest.fixture
def cli(tmp_path, store_url):
    """`xvckit ARGS` on the test's store, as a user runs it (its Result: exit code, output)."""
    from typer.testing import CliRunner

    from xvckit.cli import app

    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": store_url}}))

    def run(*args: str):
        return CliRunner().invoke(app, [*args, "--config", str(config)])

    return run


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    server = os.environ.get("XVCKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"xvckit_test_{os.getpid()}"
    try:
        admin = sa.create_engine(
            server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # any failure to connect means "not here"
        yield f"unavailable: {server}: {str(exc).splitlines()[0]}"
        return
    yield server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each store test runs on SQLite and on PostgreSQL (empty tables each time)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/xvckit.db"
    url = request.getfixturevalue("postgres_database")
    if url.startswith("unavailable: "):
        require_service("PostgreSQL", url.removeprefix("unavailable: "))
    import sqlalchemy as sa

    from xvckit.store import audit, engine_for

    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    audit.seen_head_path(url).unlink(missing_ok=True)  # a store recreated on purpose
    return url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The test Redis server's URL (skipped with the reason when it is absent, failed in CI)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        require_service("Redis", f"{REDIS_URL}: {exc}")
    yield REDIS_URL
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_url) -> AsyncIterator[str]:
    """A key prefix of this test's own on the Redis server, its keys deleted afterwards."""
    import redis.asyncio as aioredis

    prefix = f"xvckit-test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
