-- Provider callbacks (SPEC §6, issue 13).
-- callback_token: the unguessable per-task part of the callback URL given to the
--   provider (PUBLIC_BASE_URL/callbacks/<provider>/<token>); NULL = polling only.
-- callback_hint: 1 when a callback arrived while the task was leased (a poll in
--   flight may have seen the old state): the release then makes the task due at once.
ALTER TABLE tasks ADD COLUMN callback_token TEXT;
ALTER TABLE tasks ADD COLUMN callback_hint INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_callback_token ON tasks (callback_token)
    WHERE callback_token IS NOT NULL;
-- Short links (SPEC §3): a provider link too long for a message is posted as
-- PUBLIC_BASE_URL/r/<token>, a redirect valid until the provider's link expires.
-- url_hash (sha256 of url) keeps one token per task and link across delivery retries.
CREATE TABLE short_links (
    token      TEXT PRIMARY KEY,
    task_id    INTEGER NOT NULL,
    url_hash   TEXT NOT NULL,
    url        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    UNIQUE (task_id, url_hash)
);
