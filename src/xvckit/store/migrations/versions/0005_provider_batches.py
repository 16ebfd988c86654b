"""The batches and files keys made at the providers through the gateway (gateway/batches.py):
`xvckit_provider_batches`, whose each one is and when its results were ledgered. Frozen here as
store/schema.py declares it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "xvckit_provider_batches",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("ledgered_at", sa.Double),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_xvckit_provider_batches_idempotency"),
    )
    op.create_index(
        "ix_xvckit_provider_batches_owner", "xvckit_provider_batches", ["owner", "kind", "created_at"]
    )
