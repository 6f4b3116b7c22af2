package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

// Storage faults that readiness reports (issue 13, case 6): before, /readyz
// was 200 with a full disk (every enqueue failing), a damaged SQLite file
// or a deleted data directory, because it only asked the database for
// SELECT 1.

// MinFreeDisk is the free space the data directory's file system must have
// for an SQLite store to count as ready: below it SQLite's next WAL growth or
// checkpoint can fail, and every write with it.
const MinFreeDisk = 32 << 20

// ErrDiskFull is the readiness error of an SQLite store whose disk has less
// than MinFreeDisk free.
var ErrDiskFull = errors.New("the data directory's disk is (nearly) full")

// checkEvery bounds how often Check really asks: /readyz is unauthenticated,
// and every check writes a row.
const checkEvery = time.Second

// checkTimeout bounds one check. It runs on its own deadline, not the
// caller's: its result is shared for a second, and a caller that went away
// must not make it an error for everyone else.
const checkTimeout = 2 * time.Second

// health caches the last Check.
type health struct {
	mu   sync.Mutex
	at   time.Time
	last error
}

// Check reports whether the store can keep its promises now: the database
// accepts a write (not only a read: a PostgreSQL that failed over to a
// read-only replica answers SELECT 1), and on SQLite the database file is
// still the one opened and undamaged (sqlitedb.Health) and its disk has
// room. Results are reused for a second.
func (s *Store) Check(ctx context.Context) error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if !s.health.at.IsZero() && time.Since(s.health.at) < checkEvery {
		return s.health.last
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	defer cancel()
	s.health.last = s.check(ctx)
	s.health.at = time.Now()
	return s.health.last
}

func (s *Store) check(ctx context.Context) error {
	if s.kind == SQLite {
		if err := sqlitedb.Health(s.db); err != nil {
			return err
		}
		if err := diskRoom(filepath.Dir(s.sqlite), MinFreeDisk); err != nil {
			return err
		}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO blacksky_health (id, checked_at) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("write to %s: %w", s.kind, err)
	}
	return nil
}

// CheckSummary says what kind of failure a Check error is, in words that
// name nothing of the deployment (no path, host, user or database name):
// readiness answers anyone (issue 15), and the error itself carries all of
// them. The process's log and 'blacksky doctor' have the details.
func CheckSummary(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, sqlitedb.ErrFileGone):
		return sqlitedb.ErrFileGone.Error()
	case errors.Is(err, sqlitedb.ErrDamaged):
		return sqlitedb.ErrDamaged.Error()
	case errors.Is(err, ErrDiskFull):
		return ErrDiskFull.Error()
	case IsUnavailable(err):
		return "unreachable or not answering"
	default:
		return "a test write failed"
	}
}

// diskRoom reports ErrDiskFull when dir's file system has less than need
// bytes free for an unprivileged process.
func diskRoom(dir string, need uint64) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("check free disk space in %s: %w", dir, err)
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < need {
		return fmt.Errorf("%w: %d MiB free in %s, %d MiB needed", ErrDiskFull, free>>20, dir, need>>20)
	}
	return nil
}
