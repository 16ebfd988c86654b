"""The prompt library and the knowledge base (xvckit.knowledge).

The knowledge base's full-text search is made here for each back end: an FTS5 table kept in
step with `xvckit_kb_entries` by triggers on SQLite, a GIN index on the weighted tsvector of
its text on PostgreSQL. Tables are frozen here, as in 0001.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_FTS = "xvckit_kb_fts"
_SEARCHED = ("pattern", "tags", "problem", "solution")
_VECTOR = (
    "setweight(to_tsvector('english', pattern), 'A') || setweight(to_tsvector('english', tags), 'B') || "
    "setweight(to_tsvector('english', problem), 'C') || setweight(to_tsvector('english', solution), 'D')"
)


def upgrade() -> None:
    op.create_table(
        "xvckit_prompts",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("team_id", sa.String(32)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "xvckit_prompt_versions",
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
    op.create_table(
        "xvckit_prompt_labels",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("label", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"], ["xvckit_prompt_versions.name", "xvckit_prompt_versions.version"]
        ),
    )
    op.create_table(
        "xvckit_kb_entries",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(100), nullable=False, unique=True),
        sa.Column("team_id", sa.String(32)),
        sa.Column("pattern", sa.String(300), nullable=False),
        sa.Column("problem", sa.Text, nullable=False),
        sa.Column("solution", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("links", sa.JSON, nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_xvckit_kb_search ON xvckit_kb_entries USING GIN (({_VECTOR}))")
    else:
        _sqlite_fts()


def _sqlite_fts() -> None:
    """An external-content FTS5 table (the text is kept once, in the entries) and the triggers
    that keep its index in step with every insert, update and delete."""
    columns = ", ".join(_SEARCHED)
    new = ", ".join(f"new.{c}" for c in _SEARCHED)
    old = ", ".join(f"old.{c}" for c in _SEARCHED)
    op.execute(
        f"CREATE VIRTUAL TABLE {_FTS} USING fts5({columns}, content='xvckit_kb_entries', "
        "content_rowid='id', tokenize='porter unicode61')"
    )
    delete = f"INSERT INTO {_FTS} ({_FTS}, rowid, {columns}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {_FTS} (rowid, {columns}) VALUES (new.id, {new});"
    op.execute(f"CREATE TRIGGER {_FTS}_ai AFTER INSERT ON xvckit_kb_entries BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER {_FTS}_ad AFTER DELETE ON xvckit_kb_entries BEGIN {delete} END")
    op.execute(f"CREATE TRIGGER {_FTS}_au AFTER UPDATE ON xvckit_kb_entries BEGIN {delete} {insert} END")
