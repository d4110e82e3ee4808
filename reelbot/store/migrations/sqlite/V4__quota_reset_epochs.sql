-- /quota reset clears a day's usage; a task charged before it must not be refunded
-- after it (that would take back another task's charge). Each reset starts a new
-- epoch of the day's usage row; a task remembers the epoch it was charged in, and a
-- refund gives quota back only within that same epoch.
ALTER TABLE quota_usage ADD COLUMN resets INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN quota_epoch INTEGER NOT NULL DEFAULT 0;
