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
