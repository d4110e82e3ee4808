-- The PostgreSQL dialect of sqlite/V8__provider_health.sql: health per provider
-- (SPEC §4 "Failover", issue 16), shared by every process using the store.
CREATE TABLE provider_health (
    provider     TEXT PRIMARY KEY,
    state        TEXT    NOT NULL DEFAULT 'up',
    streak       INTEGER NOT NULL DEFAULT 0,
    down_since   DOUBLE PRECISION,
    retry_at     DOUBLE PRECISION,
    cooloff      DOUBLE PRECISION NOT NULL DEFAULT 0,
    reason       TEXT,
    last_error   TEXT,
    recent       TEXT    NOT NULL DEFAULT '',
    probe_until  DOUBLE PRECISION,
    updated_at   DOUBLE PRECISION NOT NULL DEFAULT 0
);
