-- +goose Up
-- Incoming messages are claimed under a lease like every queue of the job
-- engine (internal/jobs): a pending message under a live lease is being
-- handled. updated_at is the engine's record of the last change.
ALTER TABLE blacksky_inbox ADD COLUMN lease_owner TEXT;
ALTER TABLE blacksky_inbox ADD COLUMN lease_until BIGINT;
ALTER TABLE blacksky_inbox ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE blacksky_inbox SET updated_at = COALESCE(handled_at, received_at);

-- +goose Down
ALTER TABLE blacksky_inbox DROP COLUMN updated_at;
ALTER TABLE blacksky_inbox DROP COLUMN lease_until;
ALTER TABLE blacksky_inbox DROP COLUMN lease_owner;
