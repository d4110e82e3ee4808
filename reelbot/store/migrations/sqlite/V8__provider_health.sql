-- Health per provider (SPEC §4 "Failover", issue 16): one row per provider, shared
-- by every process using the store. reelbot/provider_health.py decides the values.
CREATE TABLE provider_health (
    provider     TEXT PRIMARY KEY,
    state        TEXT    NOT NULL DEFAULT 'up',  -- up | degraded | down
    streak       INTEGER NOT NULL DEFAULT 0,     -- refusals / connection failures in a row
    down_since   REAL,
    retry_at     REAL,                           -- end of the cool-off: a probe may go
    cooloff      REAL    NOT NULL DEFAULT 0,
    reason       TEXT,                           -- credits | failures, while down
    last_error   TEXT,
    recent       TEXT    NOT NULL DEFAULT '',    -- the last outcomes, "+" / "-", newest last
    probe_until  REAL,                           -- a probe is in flight until then
    updated_at   REAL    NOT NULL DEFAULT 0
);
