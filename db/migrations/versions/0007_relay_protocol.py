"""relay protocol: honest resume (resume_streams), frame rate limits as settings, broadcast

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

from app import sqlfiles

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles): upgrade.sql (new
# settings), then every function file it (re)loads, as hearth_owner.
REVISION = "0007_relay_protocol"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"])
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")


def downgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"])
    sqlfiles.reload_previous(op, REVISION)
