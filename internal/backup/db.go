package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// DB keeps one session's backups in the blacksky_backups table, which
// survives where the disk does not (Heroku Postgres).
type DB struct {
	st      *store.Store
	session string
}

// NewDB returns the backups of sessionID in st's database.
func NewDB(st *store.Store, sessionID string) *DB {
	return &DB{st: st, session: sessionID}
}

// Save stores data as the backup taken at createdAt, in one statement:
// either the whole backup is there or none of it.
func (d *DB) Save(ctx context.Context, data []byte, createdAt time.Time) (Entry, error) {
	at := createdAt.UTC().Truncate(time.Millisecond)
	var id int64
	err := d.st.DB().QueryRowContext(ctx,
		"INSERT INTO blacksky_backups (session_id, created_at, data) VALUES ($1, $2, $3) RETURNING id",
		d.session, at.UnixMilli(), data).Scan(&id)
	if err != nil {
		return Entry{}, fmt.Errorf("save backup to database: %w", err)
	}
	return Entry{Source: SourceDB, ID: id, CreatedAt: at, Size: int64(len(data))}, nil
}

// List returns the session's backups in the database, newest first.
func (d *DB) List(ctx context.Context) ([]Entry, error) {
	rows, err := d.st.DB().QueryContext(ctx, `
		SELECT id, created_at, length(data) FROM blacksky_backups
		WHERE session_id = $1 ORDER BY created_at DESC, id DESC`, d.session)
	if err != nil {
		return nil, fmt.Errorf("list database backups: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{Source: SourceDB}
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Size); err != nil {
			return nil, fmt.Errorf("list database backups: %w", err)
		}
		e.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list database backups: %w", err)
	}
	return out, nil
}

// Read returns the contents of a backup in the database.
func (d *DB) Read(ctx context.Context, e Entry) ([]byte, error) {
	var data []byte
	err := d.st.DB().QueryRowContext(ctx,
		"SELECT data FROM blacksky_backups WHERE id = $1 AND session_id = $2", e.ID, d.session).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read %s: it was deleted", e)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e, err)
	}
	return data, nil
}

// Prune deletes all but the newest keep backups of the session from the
// database; keep < 1 deletes none. It returns how many it deleted.
func (d *DB) Prune(ctx context.Context, keep int) (int64, error) {
	if keep < 1 {
		return 0, nil
	}
	res, err := d.st.DB().ExecContext(ctx, `
		DELETE FROM blacksky_backups WHERE session_id = $1 AND id NOT IN (
			SELECT id FROM blacksky_backups WHERE session_id = $1
			ORDER BY created_at DESC, id DESC LIMIT $2)`, d.session, keep)
	if err != nil {
		return 0, fmt.Errorf("prune database backups: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
