package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PhoneActivity is what is known of the account's primary phone.
type PhoneActivity struct {
	// LastSeen is the newest time the phone was seen active (Unix ms precision).
	LastSeen time.Time
	// Warned is set once the owner was warned about LastSeen being old.
	Warned bool
}

// PhoneSeen records that the account's phone was active at at. The time
// only moves forward (a late, older event changes nothing); when it moves,
// the warning is cleared.
func (s *Store) PhoneSeen(ctx context.Context, sessionID string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO blacksky_phone (session_id, last_seen, warned) VALUES ($1, $2, 0)
		ON CONFLICT (session_id) DO UPDATE SET last_seen = excluded.last_seen, warned = 0
		WHERE blacksky_phone.last_seen < excluded.last_seen`, sessionID, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("record phone activity: %w", err)
	}
	return nil
}

// Phone returns what is known of the account's phone; ok is false when it
// was never seen.
func (s *Store) Phone(ctx context.Context, sessionID string) (PhoneActivity, bool, error) {
	var last int64
	var warned int
	err := s.db.QueryRowContext(ctx, `SELECT last_seen, warned FROM blacksky_phone WHERE session_id = $1`, sessionID).
		Scan(&last, &warned)
	if errors.Is(err, sql.ErrNoRows) {
		return PhoneActivity{}, false, nil
	}
	if err != nil {
		return PhoneActivity{}, false, fmt.Errorf("read phone activity: %w", err)
	}
	return PhoneActivity{LastSeen: time.UnixMilli(last), Warned: warned != 0}, true, nil
}

// MarkPhoneWarned records the warning about lastSeen and reports whether
// this call made it: false when the owner was already warned or the phone
// has been seen since, so of several callers one warns.
func (s *Store) MarkPhoneWarned(ctx context.Context, sessionID string, lastSeen time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE blacksky_phone SET warned = 1
		WHERE session_id = $1 AND last_seen = $2 AND warned = 0`, sessionID, lastSeen.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("record phone warning: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record phone warning: %w", err)
	}
	return n == 1, nil
}
