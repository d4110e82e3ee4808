-- Server settings and spending (SPEC §3 "/settings", "Spending").
-- Quotas count credits from here on. Every existing number already is one: a
-- generation was charged quota_weight 1 (= the default credit price of every
-- provider) and a training CHARACTER_TRAINING_WEIGHT, so usage rows, user limits
-- (user_quotas) and server defaults (guild_settings) keep their meaning unchanged:
-- a limit of 5 generations is a limit of 5 credits while prices stay at 1.
CREATE TABLE guild_config (
    guild_id          INTEGER PRIMARY KEY,
    server_budget     INTEGER NOT NULL DEFAULT 0,   -- credits per UTC day, 0 = unlimited
    default_provider  TEXT,
    default_model     TEXT
);

-- Per-guild sets and maps, one row per entry:
--   channel      entry = channel id, value 1  (/animate allow-list)
--   banned_word  entry = the word or phrase, normalised (NFKC, casefolded)
--   price        entry = provider id, value = credits per generation
--   role_limit   entry = role id, value = daily credit limit (0 = unlimited)
CREATE TABLE guild_entries (
    guild_id  INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    entry     TEXT    NOT NULL,
    value     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, kind, entry)
);

-- The server's spend today is the sum of its members' usage rows.
CREATE INDEX quota_usage_guild_day ON quota_usage(guild_id, day);
