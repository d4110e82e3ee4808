-- The PostgreSQL dialect of sqlite/V3__never_pay_twice.sql.
-- Never pay twice (SPEC §4): what a resend needs, kept with the task.
ALTER TABLE tasks ADD COLUMN submit_key TEXT;
ALTER TABLE tasks ADD COLUMN submit_call TEXT;
ALTER TABLE tasks ADD COLUMN not_found_streak INTEGER NOT NULL DEFAULT 0;
