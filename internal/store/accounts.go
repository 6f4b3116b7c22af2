package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	wastore "go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/sendcheck"
	"github.com/blacksky-bot/blacksky/internal/signalcache"
)

// Device returns the whatsmeow device for sessionID: the paired one when the
// store holds its session, otherwise a new, unpaired device. It keeps what
// every send reads in memory (internal/signalcache), so it must be called only
// by the holder of the account's lease, and again after the lease is retaken.
// Its sends' session writes are not fenced: use FencedDevice under a lease.
func (s *Store) Device(ctx context.Context, sessionID string) (*wastore.Device, error) {
	return s.FencedDevice(ctx, sessionID, "")
}

// FencedDevice is Device for the holding of the account's lease named by
// leaseToken (lease.Lease.Token): the sessions of a send are written only
// while blacksky_leases still names that holding, and the write fails
// otherwise, so that neither a process that lost the lease nor a write of
// its that reaches the database late can put an older Signal session over
// the next holder's (a resend from it would reuse a message key the contact
// already used). An empty token fences nothing.
func (s *Store) FencedDevice(ctx context.Context, sessionID, leaseToken string) (*wastore.Device, error) {
	dev, err := s.device(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	// Reloaded now, not at open, so that it holds what a previous holder of
	// the lease wrote; whatsmeow keeps it current from here on.
	if err := s.container.LIDMap.FillCache(ctx); err != nil {
		return nil, fmt.Errorf("load LID mappings: %w", err)
	}
	signalcache.Attach(dev, withSessionWriter(s.wadb, fence{sessionID: sessionID, token: leaseToken}), sendcheck.Decorate)
	return dev, nil
}

func (s *Store) device(ctx context.Context, sessionID string) (*wastore.Device, error) {
	jid, ok, err := s.Account(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if ok {
		dev, err := s.container.GetDevice(ctx, jid)
		if err != nil {
			return nil, fmt.Errorf("load device %s: %w", jid, err)
		}
		if dev != nil {
			return dev, nil
		}
		s.log.Warn("account was paired but its session is gone from the store; pairing is needed", "session", sessionID, "jid", jid.String())
	}
	return s.container.NewDevice(), nil
}

// Account returns the device JID bound to sessionID, if it was ever paired.
func (s *Store) Account(ctx context.Context, sessionID string) (types.JID, bool, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, "SELECT jid FROM blacksky_accounts WHERE session_id = $1", sessionID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return types.JID{}, false, nil
	}
	if err != nil {
		return types.JID{}, false, fmt.Errorf("read account %s: %w", sessionID, err)
	}
	jid, err := types.ParseJID(raw)
	if err != nil {
		return types.JID{}, false, fmt.Errorf("read account %s: bad jid %q: %w", sessionID, raw, err)
	}
	return jid, true, nil
}

// BindAccount records that sessionID is now the device jid (after pairing).
func (s *Store) BindAccount(ctx context.Context, sessionID string, jid types.JID) error {
	now := time.Now().UnixMilli()
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO blacksky_accounts (session_id, jid, paired_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (session_id) DO UPDATE SET jid = excluded.jid, paired_at = excluded.paired_at, updated_at = excluded.updated_at`,
		sessionID, jid.String(), now)
	if err != nil {
		return fmt.Errorf("bind account %s: %w", sessionID, err)
	}
	return nil
}

// UnbindAccount forgets the device of sessionID (after a logout).
func (s *Store) UnbindAccount(ctx context.Context, sessionID string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM blacksky_accounts WHERE session_id = $1", sessionID); err != nil {
		return fmt.Errorf("unbind account %s: %w", sessionID, err)
	}
	return nil
}
