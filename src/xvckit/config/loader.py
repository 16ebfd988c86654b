"""Find, read and validate `xvckit.yaml`; resolve `env:NAME` secrets; name the field on error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from xvckit.config.schema import Config, folder_problem, full_path, master_key_problem
from xvckit.errors import UserError

CONFIG_ENV = "XVCKIT_CONFIG"
MASTER_KEY_ENV = "XVCKIT_MASTER_KEY"
DATA_DIR_ENV = "XVCKIT_DATA_DIR"
DEFAULT_CONFIG_NAME = "xvckit.yaml"
EXAMPLE_PATH = Path(__file__).with_name("example.yaml")


class ConfigError(UserError):
    """Problems in the user's configuration, each said in a line of its own with where it is."""


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: --config, then $XVCKIT_CONFIG, then ./xvckit.yaml if present."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.exists() else None


def load(
    explicit: str | os.PathLike[str] | None = None,
    *,
    required: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Load the configuration; with no file anywhere, the defaults (unless `required`).

    `data_dir` (--data-dir), else $XVCKIT_DATA_DIR, names the data folder over the file's
    `storage`: the SQLite store moves into it; a PostgreSQL store stays where `storage.url` says
    (a folder cannot hold it) and the folder keeps the local files (keys, journal)."""
    path = resolve_path(explicit)
    if path is None:
        if required:
            raise ConfigError(f"no configuration: pass --config, set {CONFIG_ENV} or create ./xvckit.yaml")
        data, source = {}, "defaults"
    else:
        data, source = _read(path), str(path)
    return from_mapping(_with_data_dir(data, data_dir), source=source)


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def _with_data_dir(data: Any, explicit: str | os.PathLike[str] | None) -> Any:
    """The document with --data-dir or $XVCKIT_DATA_DIR as its data folder, checked first."""
    folder = explicit or os.environ.get(DATA_DIR_ENV)
    if not folder:
        return data
    path = full_path(folder)
    problem = folder_problem(path)
    if problem:
        raise ConfigError(f"{'--data-dir ' if explicit else DATA_DIR_ENV + '='}{folder}: {problem}")
    storage = data.get("storage", {}) if isinstance(data, dict) else None
    if not isinstance(storage, dict):
        return data  # not a mapping: validation says so
    url = storage.get("url")
    keep = isinstance(url, str) and not url.startswith("sqlite:")
    return {**data, "storage": {**storage, "data_dir": path, "url": url if keep else None}}


def from_mapping(data: Any, *, source: str = "config") -> Config:
    """Validate a parsed document, resolving env: references and environment overrides."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    data = _resolve_env_refs(data, source)
    if os.environ.get(MASTER_KEY_ENV):
        problem = master_key_problem(os.environ[MASTER_KEY_ENV])
        if problem:
            raise ConfigError(f"{MASTER_KEY_ENV}: {problem}")
        data = {**data, "admin": {**(data.get("admin") or {}), "master_key": os.environ[MASTER_KEY_ENV]}}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{source}: {line}" for line in format_errors(exc))) from None


def refuse_gateway_keys(config: Config, master_key: str | None, source: str) -> None:
    """Refuse a provider key that is one of the gateway's own (a pasted `export
    OPENAI_API_KEY=xvc-...` read back by `env:OPENAI_API_KEY`): it would be sent upstream."""
    from xvckit.store.keys import KEY_PREFIX  # not at the top: the store imports the config

    for i, provider in enumerate(config.providers):
        for j, key in enumerate(provider.api_keys):
            value = key.get_secret_value()
            if value == master_key:
                what = "this gateway's master key"
            elif value.startswith(KEY_PREFIX):
                what = f"an xvckit key ({KEY_PREFIX}...)"
            else:
                continue
            raise ConfigError(
                f"{source}: providers[{i}].api_keys[{j}]: is {what}, not a key of the provider: "
                f"refusing to send it to {provider.base_url}; give the provider's own key "
                "(the exports `xvckit up` prints are for the gateway's clients)"
            )


def format_errors(exc: ValidationError) -> list[str]:
    """Every problem, each on a line of its own starting with its field path (`providers[0].kind`)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        path = field_path(err["loc"])
        for message in err["msg"].removeprefix("Value error, ").splitlines():
            lines.append(f"{path}: {message}" if path else message)
    return lines


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve_env_refs(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Replace `env:NAME` in provider keys and the master key by the variable's value."""
    providers = data.get("providers")
    if isinstance(providers, list):
        resolved = []
        for i, provider in enumerate(providers):
            if isinstance(provider, dict) and isinstance(provider.get("api_keys"), list):
                keys = [
                    _env_value(key, f"providers[{i}].api_keys[{j}]", source)
                    for j, key in enumerate(provider["api_keys"])
                ]
                provider = {**provider, "api_keys": keys}
            resolved.append(provider)
        data = {**data, "providers": resolved}
    admin = data.get("admin")
    if isinstance(admin, dict) and admin.get("master_key") is not None:
        data = {
            **data,
            "admin": {**admin, "master_key": _env_value(admin["master_key"], "admin.master_key", source)},
        }
    return data


def _env_value(value: Any, where: str, source: str) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{source}: {where}: environment variable {name} is not set")
        return os.environ[name]
    return value
