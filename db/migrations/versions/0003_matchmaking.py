"""matchmaking: identity states, matches, LiveKit room outbox, webhook events; join_session reloaded

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

from app import cron, sqlfiles

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The SQL this revision ran is frozen in the folder beside it (app.sqlfiles); it also reloaded
# join_session: match sessions admit only their two identities.

_FUNCTIONS = [
    "hearth.identity_state(uuid)",
    "hearth.enqueue_match(uuid)",
    "hearth.leave_queue(uuid)",
    "hearth.match_waiting(integer)",
    "hearth.end_match(uuid, uuid, text)",
    "hearth.match_status(uuid)",
    "hearth.livekit_room(uuid, uuid)",
    "hearth.record_livekit_event(text, text, text, text, timestamptz)",
    "hearth.record_livekit_participant_event(text, text, text, text, text, timestamptz)",
    "hearth.claim_livekit_jobs(integer, interval, timestamptz)",
    "hearth.finish_livekit_job(bigint, text, integer, timestamptz)",
    "hearth.end_abandoned_matches(interval, timestamptz)",
    "hearth.reconcile_livekit_rooms(text[], timestamptz, interval)",
    "hearth.touch_identities(uuid[], timestamptz)",
    "hearth_data.create_match(uuid, uuid, timestamptz)",
    "hearth_data.finish_match(uuid, uuid, text, timestamptz)",
]


def upgrade() -> None:
    sqlfiles.run(op, ["0003_matchmaking/schema.sql", *sqlfiles.frozen_functions("0003_matchmaking")])
    cron.migration_install(op, cron.MATCH_JOBS)


def downgrade() -> None:
    cron.migration_uninstall(op, cron.MATCH_JOBS)
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    sqlfiles.reload_previous(op, "0003_matchmaking")  # join_session as 0001 had it
    for table in ("livekit_events", "livekit_jobs", "match_cooldowns", "matches"):
        op.execute(f"DROP TABLE hearth_data.{table}")
    op.execute("DROP INDEX hearth_data.identities_queue_idx")
    op.execute(
        "ALTER TABLE hearth_data.identities DROP COLUMN match_session_id, DROP COLUMN queued_at, "
        "DROP COLUMN match_state"
    )
