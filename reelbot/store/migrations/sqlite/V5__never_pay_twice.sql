-- Never pay twice (SPEC §4): what a resend needs, kept with the task.
-- submit_key: the Idempotency-Key of this task's submit, random per task, so a store
--   restored from a backup (task ids handed out again) never reuses a key.
-- submit_call: the first submit request as sent (JSON {path, body}); a resend under
--   the same key must carry the byte-identical body.
-- not_found_streak: provider 404s in a row while polling (believed after a few).
ALTER TABLE tasks ADD COLUMN submit_key TEXT;
ALTER TABLE tasks ADD COLUMN submit_call TEXT;
ALTER TABLE tasks ADD COLUMN not_found_streak INTEGER NOT NULL DEFAULT 0;
