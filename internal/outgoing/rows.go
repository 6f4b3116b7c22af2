package outgoing

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// columns is the select list scanRow reads, in its order.
const columns = `id, chat, text, wa_id, idempotency_key, state, attempts, last_error,
	created_at, queued_at, run_at, updated_at, sent_at, lease_owner, lease_until,
	receipt_state, undelivered_at, delivered_at, read_at, played_at`

// previewColumns is columns with the text read only up to the count of
// characters in parameter $n (substr counts characters on both engines).
func previewColumns(n int) string {
	return strings.Replace(columns, "text,", fmt.Sprintf("substr(text, 1, $%d),", n), 1)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanRow reads a row of columns; a sent message's State is the step its
// receipts took it to.
func scanRow(s scanner) (Message, error) {
	var (
		m                    Message
		key, owner           sql.NullString
		state, receiptState  string
		created, queued, run int64
		updated              int64
		sentAt, leaseUntil   sql.NullInt64
		undelivered, deliv   sql.NullInt64
		read, played         sql.NullInt64
	)
	err := s.Scan(&m.ID, &m.To, &m.Text, &m.WAID, &key, &state, &m.Attempts, &m.LastError,
		&created, &queued, &run, &updated, &sentAt, &owner, &leaseUntil,
		&receiptState, &undelivered, &deliv, &read, &played)
	if err != nil {
		return Message{}, err
	}
	m.IdempotencyKey, m.LeaseOwner, m.State = key.String, owner.String, State(state)
	if m.State == Sent && receiptState != "" {
		m.State = State(receiptState)
	}
	m.CreatedAt, m.QueuedAt, m.NextAttemptAt, m.UpdatedAt = fromMS(created), fromMS(queued), fromMS(run), fromMS(updated)
	m.SentAt, m.LeaseUntil = optionalTime(sentAt), optionalTime(leaseUntil)
	m.UndeliveredAt, m.DeliveredAt = optionalTime(undelivered), optionalTime(deliv)
	m.ReadAt, m.PlayedAt = optionalTime(read), optionalTime(played)
	return m, nil
}

// optionalTime is a nullable time column; zero when NULL.
func optionalTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
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

// inList appends vals to args and returns the placeholders that name
// them, comma-separated, for an "IN (...)" of a statement taking args.
func inList(args []any, vals []string) ([]any, string) {
	marks := make([]string, len(vals))
	for i, v := range vals {
		args = append(args, v)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	return args, strings.Join(marks, ", ")
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
