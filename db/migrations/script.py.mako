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

# Function files this revision (re)loads, with their sha256 (python -m app.sqlfiles FILE...).
FUNCTION_FILES: dict[str, str] = {}


def upgrade() -> None:
    sqlfiles.load_files(op, list(FUNCTION_FILES))


def downgrade() -> None:
    raise NotImplementedError("write the downgrade of this revision")
