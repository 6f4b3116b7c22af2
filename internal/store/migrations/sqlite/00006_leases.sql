-- +goose Up
-- leases records, per account, the process that last took its lease and
-- whether it gave the lease back (released_at set) or lost it or died
-- holding it (released_at NULL): then the next holder waits long enough for
-- the old one to have stopped before it connects (internal/lease). token
-- names one holding, so a process that lost the lease cannot mark the next
-- holder's released. Times are Unix milliseconds, for people reading them.
CREATE TABLE blacksky_leases (
    session_id  TEXT   PRIMARY KEY,
    holder      TEXT   NOT NULL,
    token       TEXT   NOT NULL,
    taken_at    BIGINT NOT NULL,
    released_at BIGINT
);

-- +goose Down
DROP TABLE blacksky_leases;
