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

# Function files this revision loads, with their sha256 (python -m app.sqlfiles FILE...).
# join_session.sql is reloaded: match sessions admit only their two identities.
FUNCTION_FILES: dict[str, str] = {
    "functions/hearth_data/create_match.sql": "b94dd19cfa9b7b719c03700b10ac128c4259819827e58865c7f7a5407fcb0041",
    "functions/hearth_data/finish_match.sql": "fa3983e057e23ac814d45dca0172509ccd3f2b7f96892fd37501ddca560a5dc3",
    "functions/hearth/identity_state.sql": "8459d34c9c4af0bc81b8dfc8baf1de6ff3a4ab51f9d870aa8bec8c23de0e8f59",
    "functions/hearth/enqueue_match.sql": "1dc7cbbf3dd20424cbffc68689188b73b080d212a0f04f5006b452bbe0f7e467",
    "functions/hearth/leave_queue.sql": "dc061132327c8e9b07e82366a40045ec0fd65f46b040367372cef4bd0b9a5ec2",
    "functions/hearth/match_waiting.sql": "2b97f40d31edb3109be8f260a6933e65c93d4ecc211e202dd2389416124e89d6",
    "functions/hearth/end_match.sql": "30948cc502d9cd5937c858248c087c4c3ca65c6fea145cffcb862f53ed302874",
    "functions/hearth/match_status.sql": "136f16edc658ce4718d05afa3bdb433673e7b97db77dd34bb52916e840108c10",
    "functions/hearth/livekit_room.sql": "b56b8100b9096e8af179cb63e7b927e1bb6839ca97e98d7220185f017791ef39",
    "functions/hearth/record_livekit_participant_event.sql": "14d781e311c4aa6169502ab83fa21b498a9d006e564886c960db5ebc1a3b60ea",
    "functions/hearth/record_livekit_event.sql": "0a428572a157fd62816c1855590570861c90afad88135f19da2354492572c970",
    "functions/hearth/claim_livekit_jobs.sql": "2e6f49b868dfe1b623e2617158ba1492390fd7069ce833e94b01f4901c80ab5f",
    "functions/hearth/finish_livekit_job.sql": "9bf90003502a0220df26adc85eeefe1fb7f6c31382e669a804c84e1d23bc5acb",
    "functions/hearth/end_abandoned_matches.sql": "d1db1e8178abaed59d4d23d5c092e2a38664494db7416e8a9d1100a4ab60bbc2",
    "functions/hearth/reconcile_livekit_rooms.sql": "a11f4c8d59387ac7b29d306043c7b8b562aa43cf449a5a80897827d8aae2b86d",
    "functions/hearth/touch_identities.sql": "38f37e60d87e3125b7cf283e673b5851aed18cd0d5bc1617bd8d20ce96d68f15",
    "functions/hearth/join_session.sql": "794d334a49d24b72c2bdf7690e9e1571f41e33eba40c40ee534fb5c1caeb82a7",
}

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
    sqlfiles.load_files(op, ["migrations/versions/0003_matchmaking.sql"])
    sqlfiles.load_files(op, list(FUNCTION_FILES))
    cron.migration_install(op, cron.MATCH_JOBS)


def downgrade() -> None:
    cron.migration_uninstall(op, cron.MATCH_JOBS)
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    for table in ("livekit_events", "livekit_jobs", "match_cooldowns", "matches"):
        op.execute(f"DROP TABLE hearth_data.{table}")
    op.execute("DROP INDEX hearth_data.identities_queue_idx")
    op.execute(
        "ALTER TABLE hearth_data.identities DROP COLUMN match_session_id, DROP COLUMN queued_at, "
        "DROP COLUMN match_state"
    )
