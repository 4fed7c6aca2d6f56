"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from alembic import op

from app import sqlfiles

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it, NNNN_name/: its own statements, and the
# function files it (re)loads under functions/ (`python -m app.sqlfiles freeze NNNN_name` copies them).
# Change db/schema.sql in the same commit: the migrated database must equal the declared one.
REVISION = "NNNN_name"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"])
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")


def downgrade() -> None:
    sqlfiles.reload_previous(op, REVISION, role="hearth_owner")
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"])
