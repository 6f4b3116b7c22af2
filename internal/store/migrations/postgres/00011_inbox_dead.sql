-- +goose Up
-- An incoming message given up on is "dead", as an outgoing message and a
-- webhook event are (it was "failed"): one word for the job engine's dead
-- letter everywhere (issue 16).
ALTER TABLE blacksky_inbox DROP CONSTRAINT blacksky_inbox_state_check;
UPDATE blacksky_inbox SET state = 'dead' WHERE state = 'failed';
ALTER TABLE blacksky_inbox ADD CONSTRAINT blacksky_inbox_state_check CHECK (state IN ('pending', 'handled', 'dead'));

-- +goose Down
ALTER TABLE blacksky_inbox DROP CONSTRAINT blacksky_inbox_state_check;
UPDATE blacksky_inbox SET state = 'failed' WHERE state = 'dead';
ALTER TABLE blacksky_inbox ADD CONSTRAINT blacksky_inbox_state_check CHECK (state IN ('pending', 'handled', 'failed'));
