package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// DefaultKeep is how many backups each place keeps when Options.Keep is unset.
const DefaultKeep = 5

// Options configures a Manager.
type Options struct {
	// SessionID is the account to back up (SESSION_ID).
	SessionID string
	// Passphrase is SESSION_ENCRYPTION_KEY; empty disables backups (ErrNoKey).
	Passphrase string
	// Dir is BACKUP_DIR; empty keeps backups in the database only.
	Dir string
	// Keep is BACKUP_KEEP, the number of backups kept in each place.
	Keep   int
	Logger *slog.Logger
}

// Manager writes and restores the backups of one session, in the
// database and in a directory.
type Manager struct {
	st     *store.Store
	sessID string
	keys   *keyring // nil without a passphrase
	dir    *Dir     // nil without a directory
	db     *DB
	keep   int
	log    *slog.Logger

	// mu serialises backups and restores: a scheduled backup must not
	// read the store halfway through a restore.
	mu sync.Mutex
	// now and ticker are replaced by tests.
	now    func() time.Time
	ticker func(time.Duration) (<-chan time.Time, func())
	// afterRun, if set, sees each scheduled backup's outcome (tests).
	afterRun func(BackupResult, error)
}

// BackupResult says where a backup was written.
type BackupResult struct {
	JID       types.JID
	CreatedAt time.Time
	// Written lists the copies that were stored, database first.
	Written []Entry
	// Pruned counts the older backups deleted, over both places.
	Pruned int
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	// Restored is false when nothing was restored.
	Restored bool
	// Reason says why a restore was, or was not, needed.
	Reason string
	// From is the backup restored.
	From      Entry
	JID       types.JID
	CreatedAt time.Time
	// Skipped lists newer backups that were not usable, with the reason.
	Skipped []Skipped
}

// Skipped is a backup a restore passed over.
type Skipped struct {
	Entry Entry
	Err   error
}

// New returns a Manager for opts.SessionID. A passphrase that is set but
// too short is refused; none at all makes Backup and restores return ErrNoKey.
// A nil st gives a Manager of the directory's backups only, for finding a
// backup when the database cannot be opened (Newest); it cannot Backup.
func New(st *store.Store, opts Options) (*Manager, error) {
	if opts.SessionID == "" {
		return nil, errors.New("new backup manager: no session id")
	}
	m := &Manager{
		st:     st,
		sessID: opts.SessionID,
		keep:   opts.Keep,
		log:    opts.Logger,
		now:    time.Now,
		ticker: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
	}
	if st != nil {
		m.db = NewDB(st, opts.SessionID)
	}
	if m.keep < 1 {
		m.keep = DefaultKeep
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("session", opts.SessionID)
	if opts.Dir != "" {
		m.dir = NewDir(opts.Dir, opts.SessionID)
	}
	if opts.Passphrase != "" {
		k, err := newKeyring(opts.Passphrase, defaultKDF)
		if err != nil {
			return nil, fmt.Errorf("new backup manager: %w", err)
		}
		m.keys = k
	}
	return m, nil
}

// Backup snapshots the session and writes it to the database and the
// directory, then prunes both to Keep. When one place fails, the result
// lists the copy that was written and the error says what failed.
func (m *Manager) Backup(ctx context.Context) (BackupResult, error) {
	if m.keys == nil {
		return BackupResult{}, ErrNoKey
	}
	if m.st == nil {
		return BackupResult{}, errors.New("backup: this manager has no database (made for finding a backup only)")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := Snapshot(ctx, m.st, m.sessID)
	if err != nil {
		return BackupResult{}, fmt.Errorf("back up: %w", err)
	}
	s.CreatedAt = m.now().UTC().Truncate(time.Millisecond)
	data, err := m.keys.encode(s)
	if err != nil {
		return BackupResult{}, fmt.Errorf("back up: %w", err)
	}
	res := BackupResult{JID: s.JID, CreatedAt: s.CreatedAt}
	var errs []error
	if e, err := m.db.Save(ctx, data, s.CreatedAt); err != nil {
		errs = append(errs, err)
	} else {
		res.Written = append(res.Written, e)
		n, err := m.db.Prune(ctx, m.keep)
		res.Pruned += int(n)
		errs = append(errs, err)
	}
	if m.dir != nil {
		if e, err := m.dir.Write(ctx, data, s.CreatedAt); err != nil {
			errs = append(errs, err)
		} else {
			res.Written = append(res.Written, e)
			removed, err := m.dir.Prune(ctx, m.keep)
			res.Pruned += len(removed)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("back up: %w", err)
	}
	return res, nil
}

// Run backs up every interval until ctx ends, logging each outcome; a
// session that is not paired yet is skipped quietly. It returns ErrNoKey
// at once when there is no passphrase, and nil when ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) error {
	if m.keys == nil {
		return ErrNoKey
	}
	if interval <= 0 {
		return fmt.Errorf("backup schedule: interval %v is not positive", interval)
	}
	tick, stop := m.ticker(interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
		res, err := m.Backup(ctx)
		switch {
		case errors.Is(err, ErrNotPaired):
			m.log.Debug("scheduled backup skipped: not paired yet")
		case err != nil && ctx.Err() == nil:
			m.log.Error("scheduled backup failed", "err", err, "written", len(res.Written))
		case err == nil:
			m.log.Info("backup written", "jid", res.JID.String(), "copies", len(res.Written), "pruned", res.Pruned)
		}
		if m.afterRun != nil {
			m.afterRun(res, err)
		}
	}
}

// RestoreIfMissing restores the newest valid backup when the store holds
// no session for the session ID (never paired here, or a fresh database
// after a lost or corrupt one). It does nothing when the session is
// there. ErrNoBackup means pairing is needed; the error says why.
func (m *Manager) RestoreIfMissing(ctx context.Context) (RestoreResult, error) {
	reason, err := m.missing(ctx)
	if err != nil {
		return RestoreResult{}, err
	}
	if reason == "" {
		return RestoreResult{Reason: "the store holds the session"}, nil
	}
	m.log.Info("session missing from the store, looking for a backup", "why", reason)
	res, err := m.RestoreNewest(ctx)
	res.Reason = reason
	return res, err
}

func (m *Manager) missing(ctx context.Context) (string, error) {
	jid, ok, err := m.st.Account(ctx, m.sessID)
	if err != nil {
		return "", fmt.Errorf("check session: %w", err)
	}
	if !ok {
		return "no device is bound to the session", nil
	}
	dev, err := m.st.Container().GetDevice(ctx, jid)
	if err != nil {
		return "", fmt.Errorf("check session: load device %s: %w", jid, err)
	}
	if dev == nil {
		return fmt.Sprintf("device %s is bound to the session but its keys are gone", jid), nil
	}
	return "", nil
}

// RestoreNewest restores the newest valid backup of the session, looking
// at database and directory copies newest first (the database copy first
// when both hold the same backup) and passing over damaged ones. An
// intact backup that the passphrase does not open stops the search with
// ErrWrongKey and nothing restored: a wrong key fails every backup, and
// quietly falling back to an older one would roll the session back.
func (m *Manager) RestoreNewest(ctx context.Context) (RestoreResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, res, err := m.newest(ctx)
	if err != nil {
		return res, err
	}
	if err := Restore(ctx, m.st, s); err != nil {
		return res, fmt.Errorf("restore %s: %w", res.From, err)
	}
	res.Restored = true
	m.log.Info("session restored from backup", "backup", res.From.String(), "jid", s.JID.String(),
		"taken", s.CreatedAt, "skipped", len(res.Skipped))
	return res, nil
}

// Newest returns the newest valid backup of the session and where it is
// (res.From; res.Restored stays false), by RestoreNewest's rules, without
// restoring it: for a caller that restores it into a database of its own.
func (m *Manager) Newest(ctx context.Context) (*Session, RestoreResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.newest(ctx)
}

func (m *Manager) newest(ctx context.Context) (*Session, RestoreResult, error) {
	if m.keys == nil {
		return nil, RestoreResult{}, ErrNoKey
	}
	candidates, listErr := m.candidates(ctx)
	var res RestoreResult
	for _, e := range candidates {
		s, err := m.open(ctx, e)
		if errors.Is(err, ErrWrongKey) {
			return nil, res, fmt.Errorf("restore %s: %w: check SESSION_ENCRYPTION_KEY; nothing was restored", e, ErrWrongKey)
		}
		if err != nil {
			m.log.Warn("skipping unusable backup", "backup", e.String(), "err", err)
			res.Skipped = append(res.Skipped, Skipped{Entry: e, Err: err})
			continue
		}
		res.From, res.JID, res.CreatedAt = e, s.JID, s.CreatedAt
		return s, res, nil
	}
	why := "none found"
	if len(res.Skipped) > 0 {
		why = fmt.Sprintf("%d found, none usable; newest: %v", len(res.Skipped), res.Skipped[0].Err)
	}
	err := fmt.Errorf("restore session %s: %w: %s", m.sessID, ErrNoBackup, why)
	if listErr != nil {
		err = errors.Join(err, listErr)
	}
	return nil, res, err
}

// List returns the session's backups in the database and the directory,
// newest first, the way RestoreNewest tries them.
func (m *Manager) List(ctx context.Context) ([]Entry, error) {
	return m.candidates(ctx)
}

// candidates lists backups in both places, newest first. A place that
// cannot be listed is reported but does not hide the other.
func (m *Manager) candidates(ctx context.Context) ([]Entry, error) {
	var all []Entry
	var errs []error
	if m.db != nil {
		dbs, err := m.db.List(ctx)
		if err != nil {
			m.log.Warn("cannot list database backups", "err", err)
			errs = append(errs, err)
		}
		all = append(all, dbs...)
	}
	if m.dir != nil {
		files, err := m.dir.List(ctx)
		if err != nil {
			m.log.Warn("cannot list backup files", "err", err)
			errs = append(errs, err)
		}
		all = append(all, files...)
	}
	sortNewestFirst(all)
	return all, errors.Join(errs...)
}

func (m *Manager) open(ctx context.Context, e Entry) (*Session, error) {
	var data []byte
	var err error
	if e.Source == SourceDB {
		data, err = m.db.Read(ctx, e)
	} else {
		data, err = m.dir.Read(ctx, e)
	}
	if err != nil {
		return nil, err
	}
	s, err := m.keys.decode(data)
	if err != nil {
		return nil, err
	}
	if s.SessionID != m.sessID {
		return nil, fmt.Errorf("%w: it belongs to session %q", ErrCorrupt, s.SessionID)
	}
	return s, nil
}
