-- finish_match: ends an open match. p_action decides where the two go:
--   skip     both back to waiting, and not matched again for rematch_cooldown
--   end      p_by goes idle, the other back to waiting
--   failed   (the room could not be created) both back to waiting
--   vanished (the room disappeared from LiveKit) both back to waiting
--   left     (the match session ended: its last participant left or was swept) both idle
--   expired  (the match session expired, or was cleaned up) both idle
-- The session ends (its participants leave), the room is queued for deletion, match.ended goes to both.
-- Locks in the order of db/schema.sql: the session row, then the match row, then the two identities.
CREATE OR REPLACE FUNCTION hearth_data.finish_match(
    p_session_id uuid,
    p_by uuid,
    p_action text,
    p_now timestamptz
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_match hearth_data.matches%ROWTYPE;
    v_participant_id uuid;
    v_identity_id uuid;
BEGIN
    PERFORM FROM hearth_data.sessions s WHERE s.session_id = p_session_id FOR UPDATE;
    SELECT * INTO v_match FROM hearth_data.matches m WHERE m.session_id = p_session_id FOR UPDATE;
    PERFORM FROM hearth_data.identities i WHERE i.identity_id IN (v_match.identity_a, v_match.identity_b)
      ORDER BY i.identity_id FOR UPDATE;

    UPDATE hearth_data.matches
       SET ended_at = p_now, end_action = p_action, ended_by = p_by
     WHERE session_id = p_session_id;
    UPDATE hearth_data.identities
       SET match_state = CASE WHEN p_action IN ('left', 'expired') OR (p_action = 'end' AND identity_id = p_by)
                              THEN 'idle' ELSE 'waiting' END,
           queued_at = CASE WHEN p_action IN ('left', 'expired') OR (p_action = 'end' AND identity_id = p_by)
                            THEN NULL ELSE p_now END,
           match_session_id = NULL,
           last_active_at = GREATEST(last_active_at, p_now)
     WHERE identity_id IN (v_match.identity_a, v_match.identity_b) AND match_session_id = p_session_id;
    IF p_action = 'skip' THEN
        INSERT INTO hearth_data.match_cooldowns (identity_low, identity_high, until)
        VALUES (LEAST(v_match.identity_a, v_match.identity_b), GREATEST(v_match.identity_a, v_match.identity_b),
                p_now + hearth_data.setting_interval('rematch_cooldown'))
        ON CONFLICT (identity_low, identity_high) DO UPDATE SET until = EXCLUDED.until;
    END IF;

    FOR v_participant_id IN
        SELECT pr.participant_id FROM hearth_data.presence pr WHERE pr.session_id = p_session_id
         ORDER BY pr.participant_id FOR UPDATE
    LOOP
        PERFORM hearth_data.remove_participant(v_participant_id, 'left', p_now, false);
    END LOOP;
    PERFORM hearth_data.close_session(p_session_id, 'ended', p_action, p_now);

    IF v_match.room_state <> 'failed' THEN
        INSERT INTO hearth_data.livekit_jobs (kind, room, session_id, run_at, created_at)
        VALUES ('delete_room', v_match.room, p_session_id, p_now, p_now);
        PERFORM pg_notify('hearth_livekit', '');
    END IF;
    -- Not to an identity deleted meanwhile (cleanup_inactive_identities): emit_event would raise, and
    -- the reaper and reconciler, which end many matches in one call, would fail on it at every run.
    FOR v_identity_id IN
        SELECT i.identity_id FROM hearth_data.identities i
         WHERE i.identity_id IN (v_match.identity_a, v_match.identity_b) ORDER BY i.identity_id
    LOOP
        PERFORM hearth_data.emit_event('identity', v_identity_id, 'match.ended',
            jsonb_build_object('match_session_id', p_session_id, 'action', p_action, 'by', p_by), p_now);
    END LOOP;
    PERFORM pg_notify('hearth_match', '');
END
$$;

COMMENT ON FUNCTION hearth_data.finish_match(uuid, uuid, text, timestamptz)
    IS 'Ends an open match: states by action, cooldown on skip, session ended, room deleted, match.ended.';
REVOKE ALL ON FUNCTION hearth_data.finish_match(uuid, uuid, text, timestamptz) FROM PUBLIC;
