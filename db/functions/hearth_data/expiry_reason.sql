-- expiry_reason: why an open session due at p_now expires: 'ttl' past its hard TTL ('pairing_timeout'
-- for a display still waiting for its controller), else 'idle'. expire_sessions and cleanup both ask it,
-- so a session is told the same reason whichever of them reaches it first.
CREATE OR REPLACE FUNCTION hearth_data.expiry_reason(
    p_kind text,
    p_status text,
    p_expires_at timestamptz,
    p_now timestamptz
)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_expires_at <= p_now THEN
                    CASE WHEN p_kind = 'pairing' AND p_status = 'waiting' THEN 'pairing_timeout' ELSE 'ttl' END
                ELSE 'idle' END;
$$;

COMMENT ON FUNCTION hearth_data.expiry_reason(text, text, timestamptz, timestamptz)
    IS 'Why a due session expires: ttl, pairing_timeout (a waiting display) or idle.';
REVOKE ALL ON FUNCTION hearth_data.expiry_reason(text, text, timestamptz, timestamptz) FROM PUBLIC;
