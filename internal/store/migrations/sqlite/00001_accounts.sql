-- +goose Up
-- accounts binds a SESSION_ID (the operator's name for a bot account) to the
-- WhatsApp device JID that whatsmeow's store keys the session by.
CREATE TABLE blacksky_accounts (
    session_id TEXT PRIMARY KEY,
    jid        TEXT NOT NULL,
    paired_at  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE blacksky_accounts;
