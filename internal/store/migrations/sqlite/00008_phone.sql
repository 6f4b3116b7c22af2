-- +goose Up
-- phone is when the account's primary phone was last seen doing something
-- (a message or receipt from its device 0, as a linked device observes it):
-- WhatsApp unlinks linked devices whose phone has been offline for about 14
-- days, so the owner is warned once (warned = 1) after 10 days; seeing the
-- phone again clears the warning (internal/store PhoneSeen).
CREATE TABLE blacksky_phone (
    session_id TEXT    PRIMARY KEY,
    last_seen  BIGINT  NOT NULL,
    warned     INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE blacksky_phone;
