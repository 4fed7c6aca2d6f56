"""maintenance runs: the app records the runs of its own maintenance jobs, for `hearth jobs`

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

from app import sqlfiles

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles): upgrade.sql (the table),
# then its two new functions (loaded as hearth_owner).
REVISION = "0005_maintenance_runs"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"])
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")


def downgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"])
