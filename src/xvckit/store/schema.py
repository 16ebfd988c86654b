"""Tables, declared once for every back end."""

import secrets

import sqlalchemy as sa

metadata = sa.MetaData()

meta = sa.Table(
    "xvckit_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def bump_version(conn, key: str) -> None:
    """Mark a change that other processes (gateway replicas, the CLI) should pick up."""
    value = secrets.token_hex(8)
    updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value)).rowcount
    if not updated:
        conn.execute(meta.insert().values(key=key, value=value))


# `xvckit doctor --save`: one row per run; `report` is the whole `--json` document, so the
# history can show any check's trend without a column per check.
doctor_runs = sa.Table(
    "xvckit_doctor_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),  # epoch seconds when the run started
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("velocity_band", sa.String(32)),
    sa.Column("bottleneck", sa.String(200)),
    sa.Column("report", sa.Text, nullable=False),
    sa.Index("ix_xvckit_doctor_runs_ts", "ts"),
)


# Knowledge (xvckit.knowledge): the prompt library and the knowledge base. A prompt version is
# never changed once written (its `digest` is its content's SHA-256); labels move between them.
_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

prompts = sa.Table(
    "xvckit_prompts",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("team_id", sa.String(32)),  # the owning team; None: the operator's own
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

prompt_versions = sa.Table(
    "xvckit_prompt_versions",
    metadata,
    sa.Column("name", sa.String(100), sa.ForeignKey("xvckit_prompts.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("variables", sa.JSON, nullable=False),
    sa.Column("model", sa.String(128)),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("note", sa.String(500)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

prompt_labels = sa.Table(
    "xvckit_prompt_labels",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("label", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"], ["xvckit_prompt_versions.name", "xvckit_prompt_versions.version"]
    ),
)

# Searched by SQLite FTS5 (the `xvckit_kb_fts` table and its triggers) or by PostgreSQL's
# full-text search (a GIN index on KB_VECTOR); both are made by migration 0002 only, so the
# declared schema leaves them out (KB_SEARCH_TABLES: the names a schema comparison skips).
kb_entries = sa.Table(
    "xvckit_kb_entries",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
    sa.Column("team_id", sa.String(32)),  # None: every key's
    sa.Column("pattern", sa.String(300), nullable=False),
    sa.Column("problem", sa.Text, nullable=False),
    sa.Column("solution", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # lower case, space separated: searched as words
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("source", sa.String(500)),  # the file an import read it from
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

KB_FTS = "xvckit_kb_fts"
KB_SEARCH_TABLES = frozenset(
    {
        KB_FTS,
        *(f"{KB_FTS}_{part}" for part in ("data", "idx", "docsize", "config", "content")),
        "ix_xvckit_kb_search",
    }
)
# The weighted document PostgreSQL searches: the pattern counts most, then tags, problem, solution.
KB_VECTOR = (
    "setweight(to_tsvector('english', pattern), 'A') || setweight(to_tsvector('english', tags), 'B') || "
    "setweight(to_tsvector('english', problem), 'C') || setweight(to_tsvector('english', solution), 'D')"
)

# The batches and files keys made at the providers through the gateway (`/v1/files`,
# `/v1/batches`, `/v1/messages/batches`, gateway/batches.py): whose each one is (another key
# gets 404), which provider holds it, what it may cost, and when its results were ledgered.
provider_batches = sa.Table(
    "xvckit_provider_batches",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # the provider's id of the batch or file
    sa.Column("kind", sa.String(16), nullable=False),  # batch | file
    sa.Column("api", sa.String(16), nullable=False),  # openai | anthropic
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),  # the key's id, or "master"
    sa.Column("team_id", sa.String(64)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),  # models, requests, worst-case cost, files
    sa.Column("idempotency_key", sa.String(200)),  # the caller's, for a batch's creation
    sa.Column("ledgered_at", sa.Double),  # when its results went into the usage ledger
    sa.Index("ix_xvckit_provider_batches_owner", "owner", "kind", "created_at"),
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_xvckit_provider_batches_idempotency"),
)
