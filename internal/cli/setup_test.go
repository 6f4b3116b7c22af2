package cli

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// What the operator must fix exits 2, what went wrong at run time 1: the
// driver refusing DATABASE_URL's settings is the former, a server that
// does not answer the latter.
func TestOpenFailureCodes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts store.Options
		code int
	}{
		{"driver refuses the settings", store.Options{PostgresURL: "postgres://u@127.0.0.1:1/db?connect_timeout=soon"}, exitUsage},
		{"server unreachable", store.Options{PostgresURL: "postgres://u@127.0.0.1:1/db"}, exitFailure},
		{"no database", store.Options{SQLitePath: filepath.Join(t.TempDir(), "blacksky.db"), Mode: store.Existing}, exitUsage},
	}
	for _, tt := range tests {
		_, err := store.Open(ctx, tt.opts)
		if err == nil {
			t.Fatalf("%s: Open succeeded", tt.name)
		}
		if code := openFailure(err); code != tt.code {
			t.Errorf("%s: openFailure(%v) = %d; want %d", tt.name, err, code, tt.code)
		}
	}
}
