"""core: roles, schemas, tables, the session/presence/event API, pg_cron jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from app import cron, sqlfiles

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The SQL this revision ran is frozen in the folder beside it (app.sqlfiles).


def upgrade() -> None:
    sqlfiles.run(op, ["0001_core/schema.sql", *sqlfiles.frozen_functions("0001_core")])
    cron.migration_install(op)


def downgrade() -> None:
    cron.migration_uninstall(op)
    op.execute("DROP SCHEMA hearth CASCADE")
    op.execute("DROP SCHEMA hearth_data CASCADE")
