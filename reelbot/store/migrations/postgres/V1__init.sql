-- The PostgreSQL dialect of sqlite/V1__init.sql: same tables, columns and meaning.
-- Discord snowflakes need 64 bits (BIGINT). Times are unix seconds in DOUBLE
-- PRECISION, as in SQLite, so both backends produce identical rows. JSON stays TEXT
-- (request_json, outputs_json): the store only stores and returns it, never queries it.
--
-- Tasks: one row per provider job (a video generation or a character training).
-- next_action_at is the queue: pollers claim rows whose time has come, whatever
-- the action (submit, poll, deliver). NULL means nothing left to do.
CREATE TABLE tasks (
    id                BIGSERIAL PRIMARY KEY,
    kind              TEXT    NOT NULL DEFAULT 'video',   -- video | training
    provider          TEXT    NOT NULL,
    provider_task_id  TEXT,
    guild_id          BIGINT  NOT NULL,
    channel_id        BIGINT  NOT NULL,
    thread_id         BIGINT,
    status_message_id BIGINT,
    requester_id      BIGINT  NOT NULL,
    request_json      TEXT    NOT NULL,
    state             TEXT    NOT NULL,   -- submitting|queued|running|succeeded|failed|cancelled
    raw_state         TEXT,
    progress          INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,   -- status polls made
    error_streak      INTEGER NOT NULL DEFAULT 0,   -- consecutive transient errors
    poll_interval     DOUBLE PRECISION NOT NULL,
    next_action_at    DOUBLE PRECISION,
    lease_owner       TEXT,
    lease_until       DOUBLE PRECISION,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL,
    submitted_at      DOUBLE PRECISION,
    finished_at       DOUBLE PRECISION,
    error_code        TEXT,
    error_message     TEXT,
    outputs_json      TEXT,
    credits           DOUBLE PRECISION,
    delivered         BOOLEAN NOT NULL DEFAULT FALSE,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    result_message_id BIGINT,
    status_edited_at  DOUBLE PRECISION,
    status_text       TEXT,
    quota_day         TEXT    NOT NULL,
    quota_weight      INTEGER NOT NULL DEFAULT 1,
    refunded          BOOLEAN NOT NULL DEFAULT FALSE,
    retry_of          BIGINT REFERENCES tasks(id),
    character_id      BIGINT
);

-- Partial index: its size is the number of tasks with work left, not all tasks ever.
CREATE INDEX tasks_due ON tasks(next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX tasks_status_message ON tasks(status_message_id);
CREATE INDEX tasks_result_message ON tasks(result_message_id);
CREATE INDEX tasks_requester ON tasks(guild_id, requester_id, created_at);
CREATE INDEX tasks_guild ON tasks(guild_id, created_at);

CREATE TABLE guild_settings (
    guild_id     BIGINT PRIMARY KEY,
    daily_quota  INTEGER NOT NULL
);

CREATE TABLE user_quotas (
    guild_id     BIGINT  NOT NULL,
    user_id      BIGINT  NOT NULL,
    daily_limit  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE quota_usage (
    guild_id  BIGINT  NOT NULL,
    user_id   BIGINT  NOT NULL,
    day       TEXT    NOT NULL,   -- UTC date, YYYY-MM-DD
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, user_id, day)
);

-- Who did what, for moderator actions (quota changes, resets, cancels of others' tasks).
CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    guild_id  BIGINT  NOT NULL,
    actor_id  BIGINT  NOT NULL,
    action    TEXT    NOT NULL,
    target_id BIGINT,
    details   TEXT,
    at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_guild ON audit_log(guild_id, at);

-- Reaction events already acted on, so duplicated gateway events never act twice.
CREATE TABLE reaction_actions (
    message_id BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    emoji      TEXT    NOT NULL,
    task_id    BIGINT,
    at         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
