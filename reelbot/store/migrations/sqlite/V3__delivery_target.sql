-- Where the final message is being sent, recorded before each send: after a crash the
-- bot looks for an earlier copy there (and only around that time) before posting again.
ALTER TABLE tasks ADD COLUMN delivery_channel_id INTEGER;
ALTER TABLE tasks ADD COLUMN delivery_sent_at REAL;
