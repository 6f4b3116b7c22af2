-- +goose Up
-- inbox holds every incoming WhatsApp message from the moment it is stored
-- (before WhatsApp gets its acknowledgement) until the bot has handled it,
-- and a while after, so a message WhatsApp delivers again is recognised and
-- not handled twice. Times are Unix milliseconds; booleans are 0 or 1.
CREATE TABLE blacksky_inbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  TEXT    NOT NULL,
    chat        TEXT    NOT NULL,
    msg_id      TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    sender_alt  TEXT    NOT NULL DEFAULT '',
    push_name   TEXT    NOT NULL DEFAULT '',
    is_group    INTEGER NOT NULL DEFAULT 0,
    from_me     INTEGER NOT NULL DEFAULT 0,
    kind        TEXT    NOT NULL,
    text        TEXT    NOT NULL DEFAULT '',
    sent_at     BIGINT  NOT NULL,
    received_at BIGINT  NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'handled', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    run_at      BIGINT  NOT NULL,
    handled_at  BIGINT
);
-- One row per message: a redelivery finds its row and changes nothing.
CREATE UNIQUE INDEX blacksky_inbox_msg ON blacksky_inbox (session_id, chat, msg_id);
-- Each chat's oldest pending message, for the worker.
CREATE INDEX blacksky_inbox_pending ON blacksky_inbox (session_id, chat, id)
    WHERE state = 'pending';
-- Retention pruning of handled messages.
CREATE INDEX blacksky_inbox_handled ON blacksky_inbox (session_id, handled_at)
    WHERE state = 'handled';

-- +goose Down
DROP TABLE blacksky_inbox;
