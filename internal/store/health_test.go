package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

func TestCheckWritesOnBothStores(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			if err := s.Check(ctx); err == nil {
				t.Fatal("Check passed before the schema exists: it does not write")
			}
			s.health.at = s.health.at.AddDate(0, 0, -1) // past the one-second reuse
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(ctx); err != nil {
				t.Fatalf("Check of a migrated store: %v", err)
			}
		})
	}
}

// Issue 13, cases 5 and 6: the data directory deleted under a running bot.
func TestCheckSeesADeletedDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, Options{SQLitePath: filepath.Join(dir, "blacksky.db")})
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := s.Check(ctx)
	if !errors.Is(err, sqlitedb.ErrFileGone) || !IsUnavailable(err) {
		t.Errorf("Check = %v; want ErrFileGone, answered 503", err)
	}
}

// Issue 13, case 6: a full disk made every enqueue fail while /readyz said
// 200. Readiness asks for room; here the need is set above what any disk
// has.
func TestDiskRoom(t *testing.T) {
	dir := t.TempDir()
	if err := diskRoom(dir, 1); err != nil {
		t.Fatalf("a byte free: %v", err)
	}
	err := diskRoom(dir, 1<<62)
	if !errors.Is(err, ErrDiskFull) || !IsUnavailable(err) {
		t.Errorf("diskRoom with 4 EiB needed = %v; want ErrDiskFull, answered 503", err)
	}
}

// Check's result is shared for a second: a caller that gave up (a probe
// that timed out, a client that went away) must not make it an error for
// the others.
func TestCheckIgnoresACallerThatWentAway(t *testing.T) {
	s := mustOpen(t, Options{SQLitePath: filepath.Join(t.TempDir(), "blacksky.db")})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Check(gone); err != nil {
		t.Errorf("Check for a caller that went away = %v; want the store's answer", err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check right after = %v", err)
	}
}
