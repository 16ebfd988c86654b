"""Tables, declared once for every back end."""

import secrets

import sqlalchemy as sa

SCHEMA_VERSION = 1

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
