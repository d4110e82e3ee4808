-- Provider callbacks (SPEC §6, issue 13).
-- callback_token: the unguessable per-task part of the callback URL given to the
--   provider (PUBLIC_BASE_URL/callbacks/<provider>/<token>); NULL = polling only.
-- callback_hint: 1 when a callback arrived while the task was leased (a poll in
--   flight may have seen the old state): the release then makes the task due at once.
ALTER TABLE tasks ADD COLUMN callback_token TEXT;
ALTER TABLE tasks ADD COLUMN callback_hint INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_callback_token ON tasks (callback_token)
    WHERE callback_token IS NOT NULL;
