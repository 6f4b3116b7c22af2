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
