-- The PostgreSQL dialect of sqlite/V2__characters.sql.
-- Characters: a person trained once from 20-50 photos, then reused in /animate.
CREATE TABLE characters (
    id                BIGSERIAL PRIMARY KEY,
    guild_id          BIGINT  NOT NULL,
    owner_id          BIGINT  NOT NULL,
    name              TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    state             TEXT    NOT NULL,   -- collecting | training | ready | failed
    thread_id         BIGINT,
    panel_message_id  BIGINT,             -- the running count shown while collecting
    provider_model_id TEXT,
    task_id           BIGINT,
    shared            BOOLEAN NOT NULL DEFAULT FALSE,
    error             TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX characters_name ON characters(guild_id, owner_id, name);
CREATE INDEX characters_thread ON characters(thread_id);

CREATE TABLE character_images (
    character_id  BIGINT  NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    sha256        TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    channel_id    BIGINT  NOT NULL,
    message_id    BIGINT  NOT NULL,
    url           TEXT    NOT NULL,
    added_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (character_id, sha256)
);
