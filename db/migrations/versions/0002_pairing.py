"""pairing: register_display, pair_controller, failed-attempt counting

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from app import sqlfiles

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The SQL this revision ran is frozen in the folder beside it (app.sqlfiles).


def upgrade() -> None:
    sqlfiles.run(op, ["0002_pairing/schema.sql", *sqlfiles.frozen_functions("0002_pairing")])


def downgrade() -> None:
    op.execute("DROP FUNCTION hearth.pair_controller(text, uuid, text, timestamptz)")
    op.execute("DROP FUNCTION hearth.record_pairing_failure(text, timestamptz)")
    op.execute("DROP FUNCTION hearth.register_display(uuid, interval)")
    op.execute("DROP INDEX hearth_data.sessions_pairing_code_idx")
    op.execute("DROP TABLE hearth_data.pairing_failures")
