"""partitioned events: the events table partitioned by emitted_at; create_event_partitions; prune_events
drops whole partitions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

from app import cron, sqlfiles

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The SQL this revision runs is frozen in the folder beside it (app.sqlfiles).
REVISION = "0009_partitioned_events"


def upgrade() -> None:
    sqlfiles.run(op, [f"{REVISION}/upgrade.sql"], role="hearth_owner")
    sqlfiles.run(op, sqlfiles.frozen_functions(REVISION), role="hearth_owner")
    cron.migration_install(op, cron.PARTITION_JOBS)


def downgrade() -> None:
    cron.migration_uninstall(op, cron.PARTITION_JOBS)
    sqlfiles.run(op, [f"{REVISION}/downgrade.sql"], role="hearth_owner")
    sqlfiles.reload_previous(op, REVISION, role="hearth_owner")
