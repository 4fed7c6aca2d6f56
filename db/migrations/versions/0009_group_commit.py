"""group commit: hearth.post_messages, a batch of chat messages into one session in one transaction

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

from app import sqlfiles

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles).
REVISION = "0009_group_commit"


def upgrade() -> None:
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")


def downgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"], role="hearth_owner")
    sqlfiles.reload_previous(op, REVISION, role="hearth_owner")
