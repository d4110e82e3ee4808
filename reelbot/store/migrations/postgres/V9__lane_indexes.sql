-- One index per claim lane (reelbot/jobs/poller.py): a provider's in-flight tasks by
-- due time, and the finished tasks still to deliver by due time. With tasks_due alone,
-- a claim walked every due row of every lane to find its own (on SQLite at N = 25,000 with two
-- polled providers behind, ~5 ms of the SQLite thread per claim of an idle lane).
CREATE INDEX tasks_lane_due ON tasks (provider, next_action_at)
    WHERE state IN ('submitting', 'queued', 'running');
CREATE INDEX tasks_delivery_due ON tasks (next_action_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND next_action_at IS NOT NULL;
