-- +goose Up
-- Pruning deletes delivered events by when they were delivered
-- (jobs.Queue.Prune uses the table's DoneAt, delivered_at); the index it
-- needs was on updated_at, which pruning no longer reads.
DROP INDEX blacksky_webhook_delivered;
CREATE INDEX blacksky_webhook_delivered ON blacksky_webhook (session_id, delivered_at)
    WHERE state = 'delivered';

-- +goose Down
DROP INDEX blacksky_webhook_delivered;
CREATE INDEX blacksky_webhook_delivered ON blacksky_webhook (session_id, updated_at)
    WHERE state = 'delivered';
