"""audit fixes: an owner role, safe search_path, database privileges, and the audit's defects

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

from app import sqlfiles

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles): upgrade.sql (the owner
# role, ownership, schema changes), every function file (loaded as hearth_owner), database.sql (what
# PUBLIC may do on the database itself, where the migrating role may change it).
REVISION = "0004_audit_fixes"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"])
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")
    sqlfiles.run(op, [f"{REVISION}/database.sql"])


def downgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"])
    sqlfiles.reload_previous(op, REVISION)
