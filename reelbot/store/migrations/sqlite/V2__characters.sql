-- Characters: a person trained once from 20-50 photos, then reused in /animate.
CREATE TABLE characters (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id          INTEGER NOT NULL,
    owner_id          INTEGER NOT NULL,
    name              TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    state             TEXT    NOT NULL,   -- collecting | training | ready | failed
    thread_id         INTEGER,
    panel_message_id  INTEGER,            -- the running count shown while collecting
    provider_model_id TEXT,
    task_id           INTEGER,
    shared            INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL
);
CREATE UNIQUE INDEX characters_name ON characters(guild_id, owner_id, name);
CREATE INDEX characters_thread ON characters(thread_id);

CREATE TABLE character_images (
    character_id  INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    sha256        TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    channel_id    INTEGER NOT NULL,
    message_id    INTEGER NOT NULL,
    url           TEXT    NOT NULL,
    added_at      REAL    NOT NULL,
    PRIMARY KEY (character_id, sha256)
);
