-- +goose Up
-- What WhatsApp said happened to a sent message after its server took it
-- (issue 17). receipt_state is the furthest step reached: '' (no receipt
-- yet), 'undelivered' (no delivery receipt within the delivery timeout),
-- 'delivered', 'read', 'played'; each step's time is beside it.
ALTER TABLE blacksky_outbox ADD COLUMN receipt_state TEXT NOT NULL DEFAULT ''
    CHECK (receipt_state IN ('', 'undelivered', 'delivered', 'read', 'played'));
ALTER TABLE blacksky_outbox ADD COLUMN delivered_at BIGINT;
ALTER TABLE blacksky_outbox ADD COLUMN read_at BIGINT;
ALTER TABLE blacksky_outbox ADD COLUMN played_at BIGINT;
ALTER TABLE blacksky_outbox ADD COLUMN undelivered_at BIGINT;
-- The watchdog: sent messages with no receipt yet, oldest sent first.
CREATE INDEX blacksky_outbox_awaiting_receipt ON blacksky_outbox (session_id, sent_at)
    WHERE state = 'sent' AND receipt_state = '';
-- Counting and listing sent messages by the step they reached.
CREATE INDEX blacksky_outbox_receipt_state ON blacksky_outbox (session_id, receipt_state, id)
    WHERE state = 'sent';

-- receipts holds every receipt for one of our messages as it arrived,
-- before WhatsApp gets its acknowledgement: a receipt that comes before
-- the message's sent record, or twice, or out of order, is applied from
-- here (once: the key). sender is the device (or group participant) the
-- receipt came from; chat the chat as WhatsApp named it (phone number or
-- LID); at WhatsApp's time, received_at ours.
CREATE TABLE blacksky_receipts (
    session_id  TEXT   NOT NULL,
    wa_id       TEXT   NOT NULL,
    state       TEXT   NOT NULL CHECK (state IN ('delivered', 'read', 'played')),
    sender      TEXT   NOT NULL,
    chat        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, wa_id, state, sender)
);
-- Pruning with the messages' retention.
CREATE INDEX blacksky_receipts_received ON blacksky_receipts (session_id, received_at);

-- +goose Down
DROP TABLE blacksky_receipts;
DROP INDEX blacksky_outbox_receipt_state;
DROP INDEX blacksky_outbox_awaiting_receipt;
ALTER TABLE blacksky_outbox DROP COLUMN undelivered_at;
ALTER TABLE blacksky_outbox DROP COLUMN played_at;
ALTER TABLE blacksky_outbox DROP COLUMN read_at;
ALTER TABLE blacksky_outbox DROP COLUMN delivered_at;
ALTER TABLE blacksky_outbox DROP COLUMN receipt_state;
