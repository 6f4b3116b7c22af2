-- +goose Up
-- health holds one row that readiness writes (at most once a second): a
-- database that answers reads but refuses writes (read-only after a
-- failover, out of disk) is not ready (internal/store Check).
CREATE TABLE blacksky_health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE blacksky_health;
