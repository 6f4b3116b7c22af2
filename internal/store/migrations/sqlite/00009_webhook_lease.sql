-- +goose Up
-- Webhook events are claimed under a lease like every queue of the job
-- engine (internal/jobs): a pending event under a live lease is being
-- posted; one whose lease ran out (its process died) is due again.
ALTER TABLE blacksky_webhook ADD COLUMN lease_owner TEXT;
ALTER TABLE blacksky_webhook ADD COLUMN lease_until BIGINT;

-- +goose Down
ALTER TABLE blacksky_webhook DROP COLUMN lease_until;
ALTER TABLE blacksky_webhook DROP COLUMN lease_owner;
