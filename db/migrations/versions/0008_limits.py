"""limits: identity_rate_limit, max_open_sessions_per_identity, max_sockets_per_identity; app users

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

from app import sqlfiles

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles).
REVISION = "0008_limits"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"], role="hearth_owner")
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")


def downgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"], role="hearth_owner")
    sqlfiles.reload_previous(op, REVISION, role="hearth_owner")
