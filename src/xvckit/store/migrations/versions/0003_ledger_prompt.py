"""The ledger's `prompt` column: the library prompt the gateway rendered into a request
(`x-xvckit-prompt`), as `name@version`, for usage, cost, errors and latency per prompt version.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("xvckit_usage", sa.Column("prompt", sa.String(120)))
