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

# Function files this revision loads, with their sha256 (python -m app.sqlfiles FILE...).
FUNCTION_FILES: dict[str, str] = {
    "functions/hearth/identity_seq.sql": "08da823b5de602a27548b20edb430fd00fa0aa940d76ad97e5c6e194d79933fc",
    "functions/hearth/session_by_code.sql": "c4aa913ed8a2fba8b39c62d60aa3b68cbfa8d198b2de868f1840c52cf564bcd8",
    "functions/hearth/session_state.sql": "c5d5907b11953ffea41f4dc27d0a30cbda036e30f29fb5a6ec8b6225e2ac6159",
    "functions/hearth/check_session_expiry.sql": "7c2a0144e2f9059b6cd04c02d08d56a2218f7bd2c606e151ec8f939a922d8aed",
    "functions/hearth/cleanup_inactive_identities.sql": "c1a2ddbce538ff99dbd10743b4448d5b487a071556ccaf891fff8283aee999a0",
    "functions/hearth/cleanup_inactive_sessions.sql": "4d9a460534945e46977472a778c0ea26d5ab4ea748f20f867ea31416cb7cfba0",
    "functions/hearth/create_identity.sql": "155df4c671517725958e12ad3ee8de676ea7da80fa6921993ea30179fa0fe355",
    "functions/hearth/create_session.sql": "a5a66d945db8a3d331ee212f5157351609dd87670715fceba0689612c112e1ff",
    "functions/hearth/events_since.sql": "7351a4cb6cec9c6e610170bba2ff1daaf3be2b214ba48cdd78f21f04deea6b30",
    "functions/hearth/expire_sessions.sql": "c9d10e0d28cddd842f8b018ea70f4cb0d0b063be23cc085d9af845852390f4cf",
    "functions/hearth/get_setting.sql": "9ae4da08cf1e8e5b7520f783bbdc6ef0c3f7b2d072d53498c093935b23791695",
    "functions/hearth/join_session.sql": "cb57be5dbc6d00f1aba051cdf635af6fc3c7c5a5e1864b2bf8dc674ad1f11442",
    "functions/hearth/leave_session.sql": "3b69cd00c8abb6bc3e9bea88a49bdcf09608c2e42486ae749fd19574a3710ce7",
    "functions/hearth/post_message.sql": "d5ae4d12646236f036870ea2813e109694db21a6bdd1f916d6ab676029e19730",
    "functions/hearth/prune_events.sql": "4870ecd389f8a763663f814c84319bfa0d67b65887ef205f25e2ae01241e68ce",
    "functions/hearth/relay_signal.sql": "5562341c371fe7cfe5c0ec9f429cbfa12d4e0e9953c227b4821e78e205a8b117",
    "functions/hearth/session_stats.sql": "5f2c5f1ec4a6bd2ba0020b1c8fe16955a2d2b871a656089071d9044b01a073c5",
    "functions/hearth/set_setting.sql": "691f7afb51e7d42c2f76698365a8273c0cd588e82b236750fd0d326913b53bb9",
    "functions/hearth/sweep_presence.sql": "d68f77845e6220158e8379a116a8fecb862a9503965dc8a14b92da2e877afe94",
    "functions/hearth/touch.sql": "d5d3818fce4e12d4932640777dc316c8b82c9c7ef7d7ea29d1a090da48486e83",
    "functions/hearth_data/cleanup_sessions_batch.sql": "251ce0afbc4893a0368a5d7c027111ebcad378cb1c23e696ca871d9d1db63aa3",
    "functions/hearth_data/close_session.sql": "ff6b1bebb5fcf56b9ca34247d5d56a70b5e432f0b93e0654ffcaf80b96be2810",
    "functions/hearth_data/emit_event.sql": "86faebe7d49d22c3406847df836ba9e4c8115286a807a95f3c8184aa6f2c6a27",
    "functions/hearth_data/lock_present_participant.sql": "6d4199717bb39c629a4723df1a9b3062072490a2cf7ba6ba9f1ae6f6732435a8",
    "functions/hearth_data/new_code.sql": "ff4853bc678b2b72755337809171c8fb74e0f1a5ab321cc1cebe31d27aef38e3",
    "functions/hearth_data/remove_participant.sql": "06490395fd5b192ac15c6087b7956e1e4bbc38fd620c97dd8d346bddc059595d",
    "functions/hearth_data/require.sql": "83d2e405c0aa03945f092e69063084574ba014b6fc532a0c898f6eb20f85ecbd",
    "functions/hearth_data/run_cleanup_inactive_sessions.sql": "acb463602e4f0396530d4df20d877b597ff5ddffcd92880962c46296988dc8b8",
    "functions/hearth_data/sessions_idle_deadline.sql": "1530312faaa4a271329c5bc4bb989f69d26cf562512147445388cbe2574ca072",
    "functions/hearth_data/setting_integer.sql": "0515f08c1db4e494b6d01794bb79686311d9c7272747433796049d299646b040",
    "functions/hearth_data/setting_interval.sql": "d4a3f4b4ef7ca4848644b3f479f25da4f8cd9f384a19b00f0ca1c853ca1b575a",
}


def upgrade() -> None:
    sqlfiles.load_files(op, ["migrations/versions/0001_core.sql"])
    sqlfiles.load_files(op, list(FUNCTION_FILES))
    cron.migration_install(op)


def downgrade() -> None:
    cron.migration_uninstall(op)
    op.execute("DROP SCHEMA hearth CASCADE")
    op.execute("DROP SCHEMA hearth_data CASCADE")
