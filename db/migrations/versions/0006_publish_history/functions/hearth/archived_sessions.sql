-- archived_sessions: the archives of deleted sessions, newest end first, those that ended at or after
-- p_since (all when null), at most p_limit (1..10000); archives older than archive_retention are left out.
-- participant_count counts distinct identities. Details: session_history. HT400 bad arguments.
CREATE OR REPLACE FUNCTION hearth.archived_sessions(p_since timestamptz DEFAULT NULL, p_limit integer DEFAULT 100)
RETURNS TABLE (
    session_id uuid, kind text, name text, created_at timestamptz, ended_at timestamptz, end_reason text,
    participant_count integer, message_count bigint
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(p_limit BETWEEN 1 AND 10000, 'p_limit must be between 1 and 10000');
    PERFORM hearth_data.require(p_since IS NULL OR isfinite(p_since), 'p_since must be a finite time');
    RETURN QUERY
    SELECT a.session_id, a.kind, a.name, a.created_at, a.ended_at, a.end_reason,
           (SELECT count(DISTINCT p.identity_id)::integer FROM unnest(a.participants) p), a.message_count
      FROM hearth_data.session_archive a
     WHERE a.ended_at >= GREATEST(p_since, now() - hearth_data.setting_interval('archive_retention'))
     ORDER BY a.ended_at DESC, a.session_id DESC
     LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION hearth.archived_sessions(timestamptz, integer) IS
    'Archived (deleted) sessions, newest end first, ended since p_since: times, end reason, participant and '
    'message counts. Details: session_history.';
REVOKE ALL ON FUNCTION hearth.archived_sessions(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.archived_sessions(timestamptz, integer) TO hearth_app;
