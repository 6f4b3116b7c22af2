-- +goose Up
-- reachout keeps the end of WhatsApp's reach-out lock as WhatsApp announced
-- it (0 once it said the lock is over), so the next process to hold the
-- account knows it: the notification is acknowledged by the process that
-- got it, and WhatsApp does not push the lock again at the next login.
CREATE TABLE blacksky_reachout (
    session_id TEXT   PRIMARY KEY,
    until      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE blacksky_reachout;
