-- Hearth 0002: pairing. Failed code attempts per client key, for rate limiting; codes of closed
-- sessions stay findable until cleanup, so an expired code is told apart from an unknown one.

CREATE TABLE hearth_data.pairing_failures (
    client_key text NOT NULL,
    failed_at  timestamptz NOT NULL
);
CREATE INDEX pairing_failures_key_idx ON hearth_data.pairing_failures (client_key, failed_at);
CREATE INDEX pairing_failures_failed_at_idx ON hearth_data.pairing_failures (failed_at);

CREATE INDEX sessions_pairing_code_idx ON hearth_data.sessions (code, created_at) WHERE kind = 'pairing';

GRANT SELECT ON hearth_data.pairing_failures TO hearth_admin;
