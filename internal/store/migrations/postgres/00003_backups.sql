-- +goose Up
-- backups holds encrypted snapshots of a session (see internal/backup), so
-- a bot whose disk is wiped can restore from the database. created_at is
-- Unix milliseconds; data is the whole backup file, already encrypted.
CREATE TABLE blacksky_backups (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    data       BYTEA  NOT NULL
);
-- Newest-first listing and pruning per session.
CREATE INDEX blacksky_backups_newest ON blacksky_backups (session_id, created_at DESC, id DESC);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE blacksky_backups ALTER COLUMN data SET STORAGE EXTERNAL;

-- +goose Down
DROP TABLE blacksky_backups;
