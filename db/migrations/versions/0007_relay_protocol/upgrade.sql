-- Hearth 0007, run by the migrating role before the functions are loaded (as hearth_owner).
-- The per-socket frame limits become settings every instance reads (app/ratelimit.py).
INSERT INTO hearth_data.settings (key, value, value_type, description) VALUES
    ('frame_rate_limit',      '50',         'integer',  'durable frames (message, signal) per second per socket, bursts of 4x (4429 past it)'),
    ('broadcast_rate_limit',  '120',        'integer',  'broadcast frames per second per socket, bursts of 2x (dropped past it)')
ON CONFLICT (key) DO NOTHING;
