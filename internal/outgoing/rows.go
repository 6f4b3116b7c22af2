package outgoing

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// columns is the select list scanRow reads, in its order.
const columns = `id, chat, text, wa_id, idempotency_key, state, attempts, last_error,
	created_at, queued_at, run_at, updated_at, sent_at, lease_owner, lease_until`

// previewColumns is columns with the text read only up to the count of
// characters in parameter $n (substr counts characters on both engines).
func previewColumns(n int) string {
	return strings.Replace(columns, "text,", fmt.Sprintf("substr(text, 1, $%d),", n), 1)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanRow(s scanner) (Message, error) {
	var (
		m                    Message
		key, owner           sql.NullString
		state                string
		created, queued, run int64
		updated              int64
		sentAt, leaseUntil   sql.NullInt64
	)
	err := s.Scan(&m.ID, &m.To, &m.Text, &m.WAID, &key, &state, &m.Attempts, &m.LastError,
		&created, &queued, &run, &updated, &sentAt, &owner, &leaseUntil)
	if err != nil {
		return Message{}, err
	}
	m.IdempotencyKey, m.LeaseOwner, m.State = key.String, owner.String, State(state)
	m.CreatedAt, m.QueuedAt, m.NextAttemptAt, m.UpdatedAt = fromMS(created), fromMS(queued), fromMS(run), fromMS(updated)
	if sentAt.Valid {
		m.SentAt = fromMS(sentAt.Int64)
	}
	if leaseUntil.Valid {
		m.LeaseUntil = fromMS(leaseUntil.Int64)
	}
	return m, nil
}

func scanAll(rows *sql.Rows) ([]Message, error) {
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Times are stored as Unix milliseconds: one portable integer type on both
// engines, ordered, and cheap to compare in SQL.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
