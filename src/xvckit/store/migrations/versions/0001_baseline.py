"""The schema as it stood before migrations (xvckit 0.1, `create_all` at 5158e6f).

Idempotent on purpose: a store made before migrations existed has some or all of these
tables, and older ones lack the columns added in place since (`priority`, `cache`,
`cost_saved_usd`, `client_request_id`), which the store used to add when it opened. The
tables are declared here as they were then, never imported from the live schema: a migration
is a fixed step.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
frozen = sa.MetaData()

sa.Table(
    "xvckit_meta",
    frozen,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sa.Table(
    "xvckit_doctor_runs",
    frozen,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("velocity_band", sa.String(32)),
    sa.Column("bottleneck", sa.String(200)),
    sa.Column("report", sa.Text, nullable=False),
    sa.Index("ix_xvckit_doctor_runs_ts", "ts"),
)
sa.Table(
    "teams",
    frozen,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("models", sa.JSON),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("budget_usd", sa.Float),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("created_at", sa.Float, nullable=False),
)
sa.Table(
    "api_keys",
    frozen,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id")),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(16), nullable=False),
    sa.Column("models", sa.JSON),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("budget_usd", sa.Float),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("priority", sa.String(16)),
    sa.Column("cache", sa.String(16)),
)
sa.Table(
    "audit_log",
    frozen,
    sa.Column("id", _id, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.String(32), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Table(
    "secrets",
    frozen,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
sa.Table(
    "xvckit_usage",
    frozen,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, unique=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
    sa.Column("model", sa.String(128)),
    sa.Column("deployment", sa.String(200)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Double, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.Column("ttft_ms", sa.Double),
    sa.Column("upstream_ms", sa.Double, nullable=False),
    sa.Column("overhead_ms", sa.Double, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("client", sa.String(256)),
    sa.Column("cost_saved_usd", sa.Double, nullable=False, server_default="0"),
    sa.Column("client_request_id", sa.String(128)),
    sa.Index("ix_xvckit_usage_ts", "ts"),
)
sa.Table(
    "xvckit_usage_rollup",
    frozen,
    sa.Column("span", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Double, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Added in place after stores were made: each nullable or with a default, at its table's end.
_LATER_COLUMNS = {
    "api_keys": ("priority", "cache"),
    "xvckit_usage": ("cost_saved_usd", "client_request_id"),
}


def upgrade() -> None:
    bind = op.get_bind()
    frozen.create_all(bind, checkfirst=True)
    inspector = sa.inspect(bind)
    for table, columns in _LATER_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for name in columns:
            if name not in present:
                column = frozen.tables[table].c[name]
                default = column.server_default.arg if column.server_default is not None else None
                op.add_column(
                    table, sa.Column(name, column.type, nullable=column.nullable, server_default=default)
                )
