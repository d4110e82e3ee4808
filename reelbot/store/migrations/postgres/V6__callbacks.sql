-- The PostgreSQL dialect of sqlite/V6__callbacks.sql.
-- Provider callbacks (SPEC §6, issue 13).
ALTER TABLE tasks ADD COLUMN callback_token TEXT;
ALTER TABLE tasks ADD COLUMN callback_hint INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_callback_token ON tasks (callback_token)
    WHERE callback_token IS NOT NULL;
