package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Snapshot reads every row whatsmeow keeps for the device bound to
// sessionID, in one read-only transaction so the snapshot is consistent.
// It returns ErrNotPaired when the session has no stored device.
func Snapshot(ctx context.Context, st *store.Store, sessionID string) (*Session, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if st.Engine() == store.Postgres {
		// One snapshot of the database for all the SELECTs below.
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := st.DB().BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("snapshot session %s: %w", sessionID, err)
	}
	defer tx.Rollback()

	s := &Session{SessionID: sessionID, CreatedAt: time.Now().UTC()}
	var rawJID string
	var pairedAt int64
	err = tx.QueryRowContext(ctx, "SELECT jid, paired_at FROM blacksky_accounts WHERE session_id = $1", sessionID).Scan(&rawJID, &pairedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("snapshot session %s: %w", sessionID, ErrNotPaired)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot session %s: read account: %w", sessionID, err)
	}
	if s.JID, err = types.ParseJID(rawJID); err != nil {
		return nil, fmt.Errorf("snapshot session %s: bad account jid %q: %w", sessionID, rawJID, err)
	}
	s.PairedAt = time.UnixMilli(pairedAt).UTC()

	for _, spec := range sessionTables {
		t, err := readTable(ctx, tx, st.Engine(), spec, rawJID)
		if err != nil {
			return nil, fmt.Errorf("snapshot session %s: %w", sessionID, err)
		}
		if spec.name == "whatsmeow_device" && len(t.Rows) == 0 {
			return nil, fmt.Errorf("snapshot session %s: account %s has no stored device: %w", sessionID, rawJID, ErrNotPaired)
		}
		s.Tables = append(s.Tables, t)
	}
	return s, nil
}

func readTable(ctx context.Context, q querier, kind store.Engine, spec tableSpec, jid string) (Table, error) {
	cols, err := columns(ctx, q, kind, spec.name)
	if err != nil {
		return Table{}, err
	}
	if len(cols) == 0 {
		return Table{}, fmt.Errorf("table %s is missing: is the store migrated?", spec.name)
	}
	query := "SELECT " + columnList(cols) + " FROM " + spec.name
	var args []any
	if spec.key != "" {
		query += " WHERE " + quote(spec.key) + " = $1"
		args = append(args, jid)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return Table{}, fmt.Errorf("read %s: %w", spec.name, err)
	}
	defer rows.Close()
	t := Table{Name: spec.name, Columns: cols}
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Table{}, fmt.Errorf("read %s: %w", spec.name, err)
		}
		for i, v := range row {
			if row[i], err = portable(v, cols[i].Kind); err != nil {
				return Table{}, fmt.Errorf("read %s.%s: %w", spec.name, cols[i].Name, err)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return Table{}, fmt.Errorf("read %s: %w", spec.name, err)
	}
	return t, nil
}

// portable turns a value as a driver returned it into the Go type of its
// kind; SQLite, for one, hands back booleans as integers.
func portable(v any, k Kind) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch k {
	case KindInt:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int32:
			return int64(n), nil
		case int16:
			return int64(n), nil
		case int:
			return int64(n), nil
		}
	case KindBool:
		switch b := v.(type) {
		case bool:
			return b, nil
		case int64:
			if b == 0 || b == 1 {
				return b == 1, nil
			}
		}
	case KindBytes:
		switch b := v.(type) {
		case []byte:
			return b, nil
		case string:
			return []byte(b), nil
		}
	case KindText:
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			if utf8.Valid(s) {
				return string(s), nil
			}
		case [16]byte: // a binary uuid
			return uuid.UUID(s).String(), nil
		}
	case KindReal:
		switch f := v.(type) {
		case float64:
			return f, nil
		case float32:
			return float64(f), nil
		case int64:
			return float64(f), nil
		}
	}
	return nil, fmt.Errorf("unexpected %T value in a %s column", v, k)
}

func quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

func columnList(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quote(c.Name)
	}
	return strings.Join(names, ", ")
}
