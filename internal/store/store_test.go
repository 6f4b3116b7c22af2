package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.mau.fi/whatsmeow/proto/waAdv"
	wastore "go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// backends opens a fresh, unmigrated store of each kind; each open gets its
// own *sql.DB so tests can stand in for separate processes.
func backends(t *testing.T) map[Engine]func(t *testing.T) *Store {
	sqlitePath := filepath.Join(t.TempDir(), "blacksky.db")
	var pgURL string
	return map[Engine]func(t *testing.T) *Store{
		SQLite: func(t *testing.T) *Store {
			return mustOpen(t, Options{SQLitePath: sqlitePath})
		},
		Postgres: func(t *testing.T) *Store {
			if pgURL == "" {
				pgURL = testdb.PostgresURL(t)
			}
			return mustOpen(t, Options{PostgresURL: pgURL})
		},
	}
}

func mustOpen(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateAndAccounts(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			for range 2 { // a restart migrates an up-to-date schema again
				if err := s.Migrate(ctx); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
			}
			if state, err := s.Schema(ctx); err != nil || state != SchemaCurrent {
				t.Fatalf("Schema after Migrate = %v, %v; want SchemaCurrent", state, err)
			}
			dev, err := s.Device(ctx, "default")
			if err != nil || dev.ID != nil {
				t.Fatalf("Device of a never-paired session = %v, %v; want a new unpaired device", dev.ID, err)
			}
			jid := types.NewADJID("15550000001", 0, 7)
			if err := s.BindAccount(ctx, "default", jid); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Account(ctx, "default")
			if err != nil || !ok || got != jid {
				t.Fatalf("Account = %v, %v, %v; want %v", got, ok, err, jid)
			}
			if _, ok, _ := s.Account(ctx, "other"); ok {
				t.Fatal("another session sees the account")
			}
			if err := s.UnbindAccount(ctx, "default"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Account(ctx, "default"); ok {
				t.Fatal("account still bound after UnbindAccount")
			}
		})
	}
}

// Two copies of the bot overlap during a deploy: both migrate at start.
func TestConcurrentMigrations(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			const processes = 4
			stores := make([]*Store, processes)
			for i := range stores {
				stores[i] = open(t)
			}
			var wg sync.WaitGroup
			errs := make([]error, processes)
			for i, s := range stores {
				wg.Go(func() { errs[i] = s.Migrate(context.Background()) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("process %d: Migrate: %v", i, err)
				}
			}
			if err := stores[0].BindAccount(context.Background(), "default", types.NewJID("1555", types.DefaultUserServer)); err != nil {
				t.Fatalf("schema unusable after concurrent migrations: %v", err)
			}
		})
	}
}

func TestCorruptSQLiteIsRefusedAndLeftAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blacksky.db")
	garbage := bytes.Repeat([]byte("this is not a database "), 512)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{SQLitePath: path})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a corrupt file = %v; want ErrCorrupt", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, garbage) {
		t.Fatal("Open changed the corrupt file")
	}
}

func TestUnreachablePostgres(t *testing.T) {
	// Port 1 on loopback: nothing listens, the refusal is immediate.
	_, err := Open(context.Background(), Options{PostgresURL: "postgres://u:secret@127.0.0.1:1/db"})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if bytes.Contains([]byte(err.Error()), []byte("secret")) {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestSSLModeChoice(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	tests := []struct{ in, want string }{
		{"postgres://u:p@ec2-1-2-3-4.compute.amazonaws.com:5432/d", "postgres://u:p@ec2-1-2-3-4.compute.amazonaws.com:5432/d?sslmode=require"},
		{"postgres://u:p@db.example.com/d?sslmode=verify-full", "postgres://u:p@db.example.com/d?sslmode=verify-full"},
		{"postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test"},
		{"postgres://postgres@localhost/test", "postgres://postgres@localhost/test"},
	}
	for _, tt := range tests {
		if got := withSSLMode(tt.in); got != tt.want {
			t.Errorf("withSSLMode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSignalSessionsReachTheDatabase writes Signal sessions the way a send
// does (several at once, through the cache in front of whatsmeow's store and
// sessionWriter beneath it) and reads them back as the next process would.
// A write inside a transaction whatsmeow carries in ctx is part of it: a
// rolled-back one leaves nothing.
// pairedStore migrates a store and pairs its default account the way
// pairing does: the device gets its JID, is saved and bound to the account.
func pairedStore(t *testing.T, open func(*testing.T) *Store) (*Store, *wastore.Device, types.JID) {
	t.Helper()
	ctx := context.Background()
	s := open(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	dev, err := s.Device(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	jid := types.NewADJID("15550000001", 0, 7)
	dev.ID = &jid
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{1}, AccountSignature: make([]byte, 64), AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64)}
	if err := dev.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAccount(ctx, "default", jid); err != nil {
		t.Fatal(err)
	}
	return s, dev, jid
}

func TestSignalSessionsReachTheDatabase(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s, dev, _ := pairedStore(t, open)
			writes := []map[string][]byte{
				{"4915112345678:0": []byte("contact 1"), "15550000001:0": []byte("phone 1")},
				{"4915112345678:0": []byte("contact 2"), "15550000001:0": []byte("phone 2")},
				{"4915112345678:0": []byte("contact 3")},
			}
			for _, w := range writes {
				if err := dev.Sessions.PutManySessions(ctx, w); err != nil {
					t.Fatalf("PutManySessions(%d sessions): %v", len(w), err)
				}
			}

			next, err := open(t).Device(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			got, err := next.Sessions.GetManySessions(ctx, []string{"4915112345678:0", "15550000001:0", "4915112345678:1"})
			if err != nil {
				t.Fatal(err)
			}
			rollback := errors.New("decryption failed")
			err = s.wadb.DoTxn(ctx, nil, func(ctx context.Context) error {
				if err := dev.Sessions.PutManySessions(ctx, map[string][]byte{"4915112345678:0": []byte("rolled back"), "4915112345678:1": []byte("rolled back")}); err != nil {
					return err
				}
				return rollback
			})
			if !errors.Is(err, rollback) {
				t.Fatalf("transaction: %v", err)
			}
			want := map[string]string{"4915112345678:0": "contact 3", "15550000001:0": "phone 2", "4915112345678:1": ""}
			for addr, w := range want {
				if string(got[addr]) != w {
					t.Errorf("session %s after reopening = %q, want %q", addr, got[addr], w)
				}
			}
		})
	}
}

// TestDeletedDeviceForgetsItsSession is a logout as whatsmeow does it now
// (store.Device.Delete marks the device deleted and swaps its stores for
// ones that refuse every call): nothing cached in front of the old stores
// answers any more, the rows are gone, and the account's next device is a
// new, unpaired one.
func TestDeletedDeviceForgetsItsSession(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s, dev, jid := pairedStore(t, open)
			if err := dev.Sessions.PutManySessions(ctx, map[string][]byte{"4915112345678:0": []byte("s")}); err != nil {
				t.Fatal(err)
			}
			if got, err := dev.Sessions.GetSession(ctx, "4915112345678:0"); err != nil || string(got) != "s" {
				t.Fatalf("session before the logout: %q, %v", got, err)
			}
			if err := dev.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := dev.Sessions.GetSession(ctx, "4915112345678:0"); !errors.Is(err, wastore.ErrDeviceDeleted) {
				t.Fatalf("session read after the logout: %v, want ErrDeviceDeleted", err)
			}
			var rows int
			if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM whatsmeow_sessions WHERE our_jid = $1", jid.String()).Scan(&rows); err != nil || rows != 0 {
				t.Fatalf("%d session rows left after the logout (%v)", rows, err)
			}
			next, err := open(t).Device(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			if next.ID != nil {
				t.Errorf("after the logout the account's device is %s, want a new, unpaired one", next.ID)
			}
		})
	}
}

// A process that lost the lease, or a write of its that reaches the
// database late (a statement the client gave up on during a network black
// hole can still run when it lifts), must not put an older Signal session
// over the next holder's: a resend from it would reuse a message key the
// contact already used (seen in the chaos run as "old counter").
func TestSessionWritesAreFencedByTheLease(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s, _, _ := pairedStore(t, open)
			setHolder := func(token string) {
				t.Helper()
				if _, err := s.DB().ExecContext(ctx, `INSERT INTO blacksky_leases (session_id, holder, token, taken_at)
					VALUES ('default', 'test', $1, 0) ON CONFLICT (session_id) DO UPDATE SET token = excluded.token`, token); err != nil {
					t.Fatal(err)
				}
			}
			setHolder("first")
			dev, err := s.FencedDevice(ctx, "default", "first")
			if err != nil {
				t.Fatal(err)
			}
			if err := dev.Sessions.PutManySessions(ctx, map[string][]byte{"4915112345678:0": []byte("newer"), "15550000001:0": []byte("phone")}); err != nil {
				t.Fatalf("write under the lease: %v", err)
			}
			setHolder("second") // another holding began
			err = dev.Sessions.PutManySessions(ctx, map[string][]byte{"4915112345678:0": []byte("older")})
			if !errors.Is(err, ErrFenced) {
				t.Fatalf("write after the lease moved on = %v; want ErrFenced", err)
			}
			next, err := open(t).Device(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			got, err := next.Sessions.GetSession(ctx, "4915112345678:0")
			if err != nil || string(got) != "newer" {
				t.Errorf("session after the refused write = %q, %v; want the newer one kept", got, err)
			}
		})
	}
}
