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

# Function files this revision loads, with their sha256 (python -m app.sqlfiles FILE...).
FUNCTION_FILES: dict[str, str] = {
    "functions/hearth/register_display.sql": "aa4ad0e296cb547443630fd0e57f267dfaba512f07e10cc0761afd507cd835e7",
    "functions/hearth/pair_controller.sql": "d73e4ea2677efb236c9d75d4f6b4dcdad546330125dc2c0bbafe162f797c40a4",
    "functions/hearth/record_pairing_failure.sql": "e8649a6cc1a641a5032c9c9a3fcbe7496cd64c7c56b4bdcc5c7e588c01e28f24",
}


def upgrade() -> None:
    sqlfiles.load_files(op, ["migrations/versions/0002_pairing.sql"])
    sqlfiles.load_files(op, list(FUNCTION_FILES))


def downgrade() -> None:
    op.execute("DROP FUNCTION hearth.pair_controller(text, uuid, text, timestamptz)")
    op.execute("DROP FUNCTION hearth.record_pairing_failure(text, timestamptz)")
    op.execute("DROP FUNCTION hearth.register_display(uuid, interval)")
    op.execute("DROP INDEX hearth_data.sessions_pairing_code_idx")
    op.execute("DROP TABLE hearth_data.pairing_failures")
