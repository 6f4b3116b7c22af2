-- +goose Up
-- An incoming message given up on is "dead", as an outgoing message and a
-- webhook event are (it was "failed"): one word for the job engine's dead
-- letter everywhere (issue 16). SQLite cannot alter a CHECK constraint: the
-- table is rebuilt with the new one, rows and indexes as they were.
CREATE TABLE blacksky_inbox_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
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
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'handled', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    run_at      BIGINT  NOT NULL,
    handled_at  BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    updated_at  BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO blacksky_inbox_new (id, session_id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me,
    kind, text, sent_at, received_at, state, attempts, last_error, run_at, handled_at, lease_owner, lease_until, updated_at)
SELECT id, session_id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me,
    kind, text, sent_at, received_at, CASE state WHEN 'failed' THEN 'dead' ELSE state END, attempts, last_error,
    run_at, handled_at, lease_owner, lease_until, updated_at
FROM blacksky_inbox;
DROP TABLE blacksky_inbox;
ALTER TABLE blacksky_inbox_new RENAME TO blacksky_inbox;
CREATE UNIQUE INDEX blacksky_inbox_msg ON blacksky_inbox (session_id, chat, msg_id);
CREATE INDEX blacksky_inbox_pending ON blacksky_inbox (session_id, chat, id)
    WHERE state = 'pending';
CREATE INDEX blacksky_inbox_handled ON blacksky_inbox (session_id, handled_at)
    WHERE state = 'handled';

-- +goose Down
CREATE TABLE blacksky_inbox_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
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
    handled_at  BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    updated_at  BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO blacksky_inbox_new (id, session_id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me,
    kind, text, sent_at, received_at, state, attempts, last_error, run_at, handled_at, lease_owner, lease_until, updated_at)
SELECT id, session_id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me,
    kind, text, sent_at, received_at, CASE state WHEN 'dead' THEN 'failed' ELSE state END, attempts, last_error,
    run_at, handled_at, lease_owner, lease_until, updated_at
FROM blacksky_inbox;
DROP TABLE blacksky_inbox;
ALTER TABLE blacksky_inbox_new RENAME TO blacksky_inbox;
CREATE UNIQUE INDEX blacksky_inbox_msg ON blacksky_inbox (session_id, chat, msg_id);
CREATE INDEX blacksky_inbox_pending ON blacksky_inbox (session_id, chat, id)
    WHERE state = 'pending';
CREATE INDEX blacksky_inbox_handled ON blacksky_inbox (session_id, handled_at)
    WHERE state = 'handled';
