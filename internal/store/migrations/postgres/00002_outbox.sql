-- +goose Up
-- outbox holds every outgoing message from the moment it is accepted until
-- it is sent (and kept a while for WhatsApp retry receipts) or dead.
-- Times are Unix milliseconds taken from the process clock.
CREATE TABLE blacksky_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      TEXT    NOT NULL,
    chat            TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    wa_id           TEXT    NOT NULL,
    idempotency_key TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    queued_at       BIGINT  NOT NULL,
    run_at          BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    sent_at         BIGINT
);
CREATE UNIQUE INDEX blacksky_outbox_idempotency ON blacksky_outbox (session_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX blacksky_outbox_wa_id ON blacksky_outbox (session_id, wa_id);
-- Claims: open messages in id order, each chat's first open message, and
-- whether a chat has a message being sent.
CREATE INDEX blacksky_outbox_open ON blacksky_outbox (session_id, id)
    WHERE state IN ('pending', 'sending');
CREATE INDEX blacksky_outbox_open_chat ON blacksky_outbox (session_id, chat, id)
    WHERE state IN ('pending', 'sending');
CREATE INDEX blacksky_outbox_sending ON blacksky_outbox (session_id, chat)
    WHERE state = 'sending';
-- The next retry due, for the dispatcher's sleep.
CREATE INDEX blacksky_outbox_run_at ON blacksky_outbox (session_id, run_at)
    WHERE state = 'pending';
-- Listing dead messages. There is deliberately no general (state, ...)
-- index: the planner would pick it for claims on stale statistics.
CREATE INDEX blacksky_outbox_dead ON blacksky_outbox (session_id, id)
    WHERE state = 'dead';
-- Rate window, per-chat gap and retention pruning.
CREATE INDEX blacksky_outbox_sent ON blacksky_outbox (session_id, sent_at)
    WHERE state = 'sent';
-- The claim queries plan well without statistics; fresh ones still help
-- the other queries on a table that grew fast.
ALTER TABLE blacksky_outbox SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 100);

-- +goose Down
DROP TABLE blacksky_outbox;
