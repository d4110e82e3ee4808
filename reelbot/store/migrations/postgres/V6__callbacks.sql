-- The PostgreSQL dialect of sqlite/V6__callbacks.sql.
-- Provider callbacks (SPEC §6, issue 13).
ALTER TABLE tasks ADD COLUMN callback_token TEXT;
ALTER TABLE tasks ADD COLUMN callback_hint INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_callback_token ON tasks (callback_token)
    WHERE callback_token IS NOT NULL;
-- Short links (SPEC §3), see the SQLite file.
CREATE TABLE short_links (
    token      TEXT PRIMARY KEY,
    task_id    BIGINT NOT NULL,
    url_hash   TEXT NOT NULL,
    url        TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    UNIQUE (task_id, url_hash)
);
