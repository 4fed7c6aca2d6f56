"""publish, session history, room health: role hearth_publisher, the session archive, livekit_rooms

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

from app import sqlfiles

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles): upgrade.sql (the role, the
# archive tables and settings), every function file it (re)loads (as hearth_owner), database.sql (CONNECT
# for hearth_publisher, where the migrating role may grant it).
REVISION = "0006_publish_history"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"])
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")
    sqlfiles.run(op, [f"{REVISION}/database.sql"])


def downgrade() -> None:
    sqlfiles.reload_previous(op, REVISION, role="hearth_owner")
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"])
