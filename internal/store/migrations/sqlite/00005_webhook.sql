-- +goose Up
-- webhook holds every event for the WEBHOOK_URL from the moment it happens
-- until the endpoint accepted it (kept a while, then pruned) or it is dead.
-- body is the exact JSON that is signed and posted on every attempt.
-- Times are Unix milliseconds.
CREATE TABLE blacksky_webhook (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    run_at       BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    delivered_at BIGINT
);
-- The event ID is the receiver's deduplication key and ours: enqueueing an
-- event twice stores it once.
CREATE UNIQUE INDEX blacksky_webhook_event ON blacksky_webhook (session_id, event_id);
CREATE INDEX blacksky_webhook_due ON blacksky_webhook (session_id, run_at, id)
    WHERE state = 'pending';
CREATE INDEX blacksky_webhook_delivered ON blacksky_webhook (session_id, updated_at)
    WHERE state = 'delivered';
-- How far the watcher of outgoing messages has reported state changes.
CREATE TABLE blacksky_webhook_cursor (
    session_id TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    ts         BIGINT NOT NULL,
    ref        BIGINT NOT NULL,
    PRIMARY KEY (session_id, name)
);

-- +goose Down
DROP TABLE blacksky_webhook_cursor;
DROP TABLE blacksky_webhook;
