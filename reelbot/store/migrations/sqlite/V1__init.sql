-- Tasks: one row per provider job (a video generation or a character training).
-- next_action_at is the queue: the poller claims rows whose time has come, whatever
-- the action (submit, poll, deliver). NULL means nothing left to do.
CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT    NOT NULL DEFAULT 'video',   -- video | training
    provider          TEXT    NOT NULL,
    provider_task_id  TEXT,
    guild_id          INTEGER NOT NULL,
    channel_id        INTEGER NOT NULL,
    thread_id         INTEGER,
    status_message_id INTEGER,
    requester_id      INTEGER NOT NULL,
    request_json      TEXT    NOT NULL,
    state             TEXT    NOT NULL,   -- submitting|queued|running|succeeded|failed|cancelled
    raw_state         TEXT,
    progress          INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,   -- status polls made
    error_streak      INTEGER NOT NULL DEFAULT 0,   -- consecutive transient errors
    poll_interval     REAL    NOT NULL,
    next_action_at    REAL,
    lease_owner       TEXT,
    lease_until       REAL,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL,
    submitted_at      REAL,
    finished_at       REAL,
    error_code        TEXT,
    error_message     TEXT,
    outputs_json      TEXT,
    credits           REAL,
    delivered         INTEGER NOT NULL DEFAULT 0,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    result_message_id INTEGER,
    status_edited_at  REAL,
    status_text       TEXT,
    quota_day         TEXT    NOT NULL,
    quota_weight      INTEGER NOT NULL DEFAULT 1,
    refunded          INTEGER NOT NULL DEFAULT 0,
    retry_of          INTEGER REFERENCES tasks(id),
    character_id      INTEGER
);

-- Partial index: its size is the number of tasks with work left, not all tasks ever.
CREATE INDEX tasks_due ON tasks(next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX tasks_status_message ON tasks(status_message_id);
CREATE INDEX tasks_result_message ON tasks(result_message_id);
CREATE INDEX tasks_requester ON tasks(guild_id, requester_id, created_at);
CREATE INDEX tasks_guild ON tasks(guild_id, created_at);

CREATE TABLE guild_settings (
    guild_id     INTEGER PRIMARY KEY,
    daily_quota  INTEGER NOT NULL
);

CREATE TABLE user_quotas (
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    daily_limit  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE quota_usage (
    guild_id  INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    day       TEXT    NOT NULL,   -- UTC date, YYYY-MM-DD
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, user_id, day)
);

-- Who did what, for moderator actions (quota changes, resets, cancels of others' tasks).
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id  INTEGER NOT NULL,
    actor_id  INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    target_id INTEGER,
    details   TEXT,
    at        REAL    NOT NULL
);
CREATE INDEX audit_guild ON audit_log(guild_id, at);

-- Reaction events already acted on, so duplicated gateway events never act twice.
CREATE TABLE reaction_actions (
    message_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    emoji      TEXT    NOT NULL,
    task_id    INTEGER,
    at         REAL    NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
