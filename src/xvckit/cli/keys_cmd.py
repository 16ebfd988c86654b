"""`xvckit keys ...` and `xvckit teams ...`: work on the store directly, no gateway needed."""

from __future__ import annotations

import time

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption, on_use, parse_lifetime
from xvckit.cli.render import print_rows
from xvckit.errors import UserError

audit = on_use("xvckit.store.audit")
stores = on_use("xvckit.store")
key_store = on_use("xvckit.store.keys")

keys_app = typer.Typer(
    help="Virtual API keys: create, list, show, update, revoke, rotate.", no_args_is_help=True
)
teams_app = typer.Typer(help="Teams with shared budgets and limits.", no_args_is_help=True)

ModelsOption = typer.Option(None, "--models", help="allowed models, comma-separated; globs allowed")
RpmOption = typer.Option(None, "--rpm", min=1, help="requests per minute")
TpmOption = typer.Option(None, "--tpm", min=1, help="tokens per minute")
BudgetOption = typer.Option(None, "--budget", min=0.0, help="budget in USD per period")
PeriodOption = typer.Option("month", "--period", help="budget period: day, week or month")
NewPeriodOption = typer.Option(None, "--period", help="budget period: day, week or month")
KeyTeamOption = typer.Option(None, "--team", help="the key's team, when keys of several teams have its name")
# what --clear may name, and the field each one is
KEY_CLEARABLE = {
    "models": "models",
    "rpm": "rpm",
    "tpm": "tpm",
    "budget": "budget_usd",
    "expires": "expires_at",
    "priority": "priority",
    "cache": "cache",
}
TEAM_CLEARABLE = {name: KEY_CLEARABLE[name] for name in ("models", "rpm", "tpm", "budget")}


def _clear_option(clearable: dict[str, str]):
    return typer.Option(None, "--clear", help=f"remove settings, comma-separated: {', '.join(clearable)}")


KEY_COLUMNS = [
    "id",
    "name",
    "role",
    "team_id",
    "hint",
    "models",
    "rpm",
    "tpm",
    "budget_usd",
    "budget_period",
    "expires_at",
    "revoked_at",
]
TEAM_COLUMNS = ["id", "name", "models", "rpm", "tpm", "budget_usd", "budget_period"]
SPEND_COLUMNS = ["scope", "period", "started_at", "resets_at", "spent_usd", "budget_usd", "left_usd"]


def _models(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    allowed = tuple(m.strip() for m in text.split(",") if m.strip())
    if not allowed:
        raise UserError("--models: give at least one model or pattern")
    return allowed


def _limits(
    models: str | None, rpm: int | None, tpm: int | None, budget: float | None, period: str
) -> key_store.Limits:
    return key_store.Limits(_models(models), rpm, tpm, budget, period if budget is not None else None)


def _changes(given: dict, clear: str | None, clearable: dict[str, str]) -> dict:
    """The fields given a value, and those --clear names set to None (no such limit)."""
    changes = {name: value for name, value in given.items() if value is not None}
    for word in (w.strip() for w in (clear or "").split(",") if w.strip()):
        name = clearable.get(word)
        if name is None:
            raise UserError(f"--clear {word}: not one of {', '.join(clearable)}")
        if name in changes:
            raise UserError(f"--clear {word} and a new value for it: choose one")
        changes[name] = None
    return changes


def _warn(config, models: tuple[str, ...] | None) -> None:
    """A model pattern no route serves makes the key refuse those requests: say so."""
    from xvckit.gateway.model_patterns import warnings

    for warning in warnings(models, config):
        typer.echo(f"xvckit: warning: {warning}", err=True)


def _key(store, ref: str, team: str | None):
    return key_store.get_key(store, ref, key_store.get_team(store, team).id if team else None)


def _print_secret(key_id: str, raw: str, as_json: bool, record: dict) -> None:
    if as_json:
        print_rows([{**record, "key": raw}], None, as_json=True)
    else:
        typer.echo(f"{key_id}: {raw}")
        typer.echo("# this is the only time the key is shown; the store keeps only its hash", err=True)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="who or what uses the key"),
    team: str | None = typer.Option(None, "--team", help="team name or id"),
    role: str = typer.Option("member", "--role", help="member, team-admin or admin"),
    models: str | None = ModelsOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: float | None = BudgetOption,
    period: str = PeriodOption,
    expires: str | None = typer.Option(None, "--expires", help="lifetime, e.g. 30d, 12h"),
    priority: str | None = typer.Option(
        None, "--priority", help="interactive (default) or batch: batch waits"
    ),
    cache: str | None = typer.Option(None, "--cache", help="response cache: on, off or deterministic"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Create a key and print it once."""
    loaded, store = stores.open_store(config, data_dir)
    expires_at = time.time() + parse_lifetime(expires) if expires else None
    limits = _limits(models, rpm, tpm, budget, period)
    key, raw = key_store.create_key(
        store,
        name,
        audit.default_actor(),
        team=team,
        role=role,
        limits=limits,
        expires_at=expires_at,
        priority=priority,
        cache=cache,
    )
    _print_secret(key.id, raw, as_json, key.public())
    _warn(loaded, limits.models)


@keys_app.command("list")
def keys_list(
    team: str | None = typer.Option(None, "--team", help="only this team's keys"),
    active: bool = typer.Option(False, "--active", help="leave out revoked keys"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """List keys (never the keys themselves: their first characters)."""
    _, store = stores.open_store(config, data_dir)
    team_id = key_store.get_team(store, team).id if team else None
    rows = [k.public() for k in key_store.list_keys(store, team_id, include_revoked=not active)]
    print_rows(rows, KEY_COLUMNS, as_json=as_json)


@keys_app.command("show")
def keys_show(
    ref: str = typer.Argument(..., help="key id or name"),
    team: str | None = KeyTeamOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Show one key's settings, and what it and its team spent this budget period."""
    _, store = stores.open_store(config, data_dir)
    key = _key(store, ref, team)
    spend = key_store.spend(store, key)
    if as_json:
        print_rows([{**key.public(), "spend": spend}], None, as_json=True)
    else:
        print_rows([key.public()], KEY_COLUMNS)
        print_rows(spend, SPEND_COLUMNS)


@keys_app.command("update")
def keys_update(
    ref: str = typer.Argument(..., help="key id or name"),
    team: str | None = KeyTeamOption,
    name: str | None = typer.Option(None, "--name", help="a new name"),
    role: str | None = typer.Option(None, "--role", help="member, team-admin or admin"),
    models: str | None = ModelsOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: float | None = BudgetOption,
    period: str | None = NewPeriodOption,
    expires: str | None = typer.Option(None, "--expires", help="a new lifetime from now, e.g. 30d, 12h"),
    priority: str | None = typer.Option(None, "--priority", help="interactive or batch"),
    cache: str | None = typer.Option(None, "--cache", help="response cache: on, off or deterministic"),
    clear: str | None = _clear_option(KEY_CLEARABLE),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Change the settings given and keep the others; --clear removes models, rpm, tpm,
    budget, expires, priority or cache. Running gateways apply it within a second."""
    loaded, store = stores.open_store(config, data_dir)
    given = {
        "name": name,
        "role": role,
        "models": _models(models),
        "rpm": rpm,
        "tpm": tpm,
        "budget_usd": budget,
        "budget_period": period,
        "expires_at": time.time() + parse_lifetime(expires) if expires else None,
        "priority": priority,
        "cache": cache,
    }
    changes = _changes(given, clear, KEY_CLEARABLE)
    key = key_store.update_key(store, _key(store, ref, team).id, changes, audit.default_actor())
    print_rows([key.public()], KEY_COLUMNS, as_json=as_json)
    _warn(loaded, changes.get("models"))


@keys_app.command("revoke")
def keys_revoke(
    ref: str = typer.Argument(..., help="key id or name"),
    team: str | None = KeyTeamOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a key; running gateways refuse it within a second."""
    _, store = stores.open_store(config, data_dir)
    revoked = key_store.revoke_key(store, _key(store, ref, team).id, audit.default_actor())
    print_rows([revoked.public()], KEY_COLUMNS, as_json=as_json)


@keys_app.command("rotate")
def keys_rotate(
    ref: str = typer.Argument(..., help="key id or name"),
    team: str | None = KeyTeamOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Give a key a new secret (same id, limits and usage); the old secret stops working."""
    _, store = stores.open_store(config, data_dir)
    key, raw = key_store.rotate_key(store, _key(store, ref, team).id, audit.default_actor())
    _print_secret(key.id, raw, as_json, key.public())


@teams_app.command("create")
def teams_create(
    name: str = typer.Argument(..., help="the team's name"),
    models: str | None = ModelsOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: float | None = BudgetOption,
    period: str = PeriodOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Create a team; its limits apply to all its keys together."""
    loaded, store = stores.open_store(config, data_dir)
    limits = _limits(models, rpm, tpm, budget, period)
    team = key_store.create_team(store, name, limits, audit.default_actor())
    print_rows([team.public()], TEAM_COLUMNS, as_json=as_json)
    _warn(loaded, limits.models)


@teams_app.command("update")
def teams_update(
    ref: str = typer.Argument(..., help="team name or id"),
    name: str | None = typer.Option(None, "--name", help="a new name"),
    models: str | None = ModelsOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: float | None = BudgetOption,
    period: str | None = NewPeriodOption,
    clear: str | None = _clear_option(TEAM_CLEARABLE),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Change the limits given and keep the others; --clear removes models, rpm, tpm or
    budget."""
    loaded, store = stores.open_store(config, data_dir)
    given = {
        "name": name,
        "models": _models(models),
        "rpm": rpm,
        "tpm": tpm,
        "budget_usd": budget,
        "budget_period": period,
    }
    changes = _changes(given, clear, TEAM_CLEARABLE)
    team = key_store.update_team(store, ref, changes, audit.default_actor())
    print_rows([team.public()], TEAM_COLUMNS, as_json=as_json)
    _warn(loaded, changes.get("models"))


@teams_app.command("list")
def teams_list(
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: bool = JsonOption
) -> None:
    """List teams."""
    _, store = stores.open_store(config, data_dir)
    print_rows([t.public() for t in key_store.list_teams(store)], TEAM_COLUMNS, as_json=as_json)


@teams_app.command("show")
def teams_show(
    ref: str = typer.Argument(..., help="team name or id"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = JsonOption,
) -> None:
    """Show a team and its keys."""
    _, store = stores.open_store(config, data_dir)
    team = key_store.get_team(store, ref)
    keys = [k.public() for k in key_store.list_keys(store, team.id)]
    if as_json:
        print_rows([{**team.public(), "keys": keys}], None, as_json=True)
    else:
        print_rows([team.public()], TEAM_COLUMNS)
        print_rows(keys, KEY_COLUMNS)
