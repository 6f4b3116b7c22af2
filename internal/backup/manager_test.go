package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// newManager returns a Manager with cheap key stretching and a clock the
// test moves.
func newManager(t *testing.T, st *store.Store, dir, pass string) (*Manager, *time.Time) {
	t.Helper()
	m, err := New(st, Options{SessionID: testSession, Passphrase: pass, Dir: dir, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	if pass != "" {
		m.keys = testKeyring(t, pass)
	}
	now := t0
	m.now = func() time.Time { return now }
	return m, &now
}

func TestManagerBackupAndRestore(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			st := openStore(t, kind)
			dev := pairDevice(t, st, testSession, "15550000001")
			m, now := newManager(t, st, dir, testPass)

			res, err := m.Backup(ctx)
			if err != nil || len(res.Written) != 2 || res.Written[0].Source != SourceDB || res.Written[1].Source != SourceDir {
				t.Fatalf("Backup = %+v, %v; want a database copy and a file", res, err)
			}
			got, err := m.RestoreIfMissing(ctx)
			if err != nil || got.Restored {
				t.Fatalf("RestoreIfMissing with the session present = %+v, %v; want nothing done", got, err)
			}

			// The disk survives, the database is new (Heroku wipes the
			// disk, not Postgres, but a lost SQLite file is this case).
			fresh := openStore(t, kind)
			m2, _ := newManager(t, fresh, dir, testPass)
			got, err = m2.RestoreIfMissing(ctx)
			if err != nil || !got.Restored || got.From.Path != res.Written[1].Path || got.JID != *dev.ID {
				t.Fatalf("RestoreIfMissing into an empty store = %+v, %v; want the file restored", got, err)
			}
			if dev2, err := fresh.Device(ctx, testSession); err != nil || dev2.ID == nil || *dev2.ID != *dev.ID {
				t.Fatalf("Device after restore = %v, %v; want the paired device", dev2, err)
			}

			// The database survives, the disk is new: Heroku.
			if err := st.Container().DeleteDevice(ctx, dev); err != nil {
				t.Fatal(err)
			}
			m3, _ := newManager(t, st, t.TempDir(), testPass)
			got, err = m3.RestoreIfMissing(ctx)
			if err != nil || !got.Restored || got.From.Source != SourceDB || got.Reason == "" {
				t.Fatalf("RestoreIfMissing with the device gone = %+v, %v; want the database copy restored", got, err)
			}

			// Keep holds in both places.
			for range 5 {
				*now = now.Add(time.Minute)
				if _, err := m.Backup(ctx); err != nil {
					t.Fatal(err)
				}
			}
			dbs, _ := m.db.List(ctx)
			files, _ := m.dir.List(ctx)
			if len(dbs) != 3 || len(files) != 3 || !dbs[0].CreatedAt.Equal(*now) || !files[0].CreatedAt.Equal(*now) {
				t.Fatalf("after 6 backups with Keep 3: %v in the database, %v on disk", dbs, files)
			}
		})
	}
}

func TestManagerWrongKeyRestoresNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			st := openStore(t, kind)
			pairDevice(t, st, testSession, "15550000001")
			m, _ := newManager(t, st, dir, testPass)
			if _, err := m.Backup(ctx); err != nil {
				t.Fatal(err)
			}
			// Same database with the session gone, and the disk copy.
			if _, err := st.DB().Exec("DELETE FROM whatsmeow_device"); err != nil {
				t.Fatal(err)
			}
			if err := st.UnbindAccount(ctx, testSession); err != nil {
				t.Fatal(err)
			}
			wrong, _ := newManager(t, st, dir, "not the passphrase we used")
			res, err := wrong.RestoreIfMissing(ctx)
			if !errors.Is(err, ErrWrongKey) || res.Restored {
				t.Fatalf("restore with the wrong key = %+v, %v; want ErrWrongKey", res, err)
			}
			if _, ok, _ := st.Account(ctx, testSession); ok {
				t.Fatal("a restore with the wrong key bound the account")
			}
			if n := deviceRows(t, st, types.NewADJID("15550000001", 0, 7)); n["whatsmeow_device"] != 0 {
				t.Fatalf("a restore with the wrong key wrote rows: %v", n)
			}
		})
	}
}

func TestManagerSkipsCorruptNewest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, store.SQLite)
	pairDevice(t, st, testSession, "15550000001")
	m, now := newManager(t, st, dir, testPass)
	m.db = NewDB(st, "elsewhere") // this test is about files alone
	first, err := m.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Hour)
	second, err := m.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newest := second.Written[1].Path
	data, _ := os.ReadFile(newest)
	if err := os.WriteFile(newest, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	// A leftover from a crash that would sort newest must not count.
	leftover := filepath.Join(dir, ".blacksky-default-"+now.Add(time.Hour).Format(timeLayout)+".bkp.tmp-1")
	os.WriteFile(leftover, data[:10], 0o600)

	fresh := openStore(t, store.SQLite)
	m2, _ := newManager(t, fresh, dir, testPass)
	res, err := m2.RestoreNewest(ctx)
	if err != nil || !res.Restored || res.From.Path != first.Written[1].Path {
		t.Fatalf("RestoreNewest with a truncated newest file = %+v, %v; want %s", res, err, first.Written[1].Path)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Entry.Path != newest || !errors.Is(res.Skipped[0].Err, ErrCorrupt) {
		t.Fatalf("Skipped = %+v; want the truncated file as corrupt", res.Skipped)
	}
}

func TestManagerNothingToRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, store.SQLite)
	m, _ := newManager(t, st, dir, testPass)
	if _, err := m.RestoreIfMissing(ctx); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("RestoreIfMissing with no backups = %v, want ErrNoBackup", err)
	}
	os.WriteFile(filepath.Join(dir, "blacksky-default-"+t0.Format(timeLayout)+".bkp"), []byte("junk"), 0o600)
	res, err := m.RestoreIfMissing(ctx)
	if !errors.Is(err, ErrNoBackup) || len(res.Skipped) != 1 {
		t.Fatalf("RestoreIfMissing with only a junk file = %+v, %v; want ErrNoBackup naming it", res, err)
	}
	if _, err := m.Backup(ctx); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("Backup of an unpaired session = %v, want ErrNotPaired", err)
	}
}

func TestManagerWithoutKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, store.SQLite)
	pairDevice(t, st, testSession, "15550000001")
	m, _ := newManager(t, st, dir, "")
	if _, err := m.Backup(ctx); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Backup without a key = %v, want ErrNoKey", err)
	}
	if _, err := m.RestoreNewest(ctx); !errors.Is(err, ErrNoKey) {
		t.Fatalf("RestoreNewest without a key = %v, want ErrNoKey", err)
	}
	if err := m.Run(ctx, time.Hour); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Run without a key = %v, want ErrNoKey", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("files written without a key: %v", files)
	}
	if l, _ := m.db.List(ctx); len(l) != 0 {
		t.Fatalf("database backups written without a key: %v", l)
	}
	if _, err := New(st, Options{SessionID: testSession, Passphrase: "short"}); !errors.Is(err, ErrKeyTooShort) {
		t.Fatalf("New with a short key = %v, want ErrKeyTooShort", err)
	}
}

func TestManagerRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t, store.SQLite)
	m, _ := newManager(t, st, t.TempDir(), testPass)
	tick := make(chan time.Time)
	m.ticker = func(time.Duration) (<-chan time.Time, func()) { return tick, func() {} }
	type outcome struct {
		res BackupResult
		err error
	}
	done := make(chan outcome)
	m.afterRun = func(res BackupResult, err error) { done <- outcome{res, err} }
	stopped := make(chan error)
	go func() { stopped <- m.Run(ctx, time.Hour) }()

	tick <- time.Now()
	if o := <-done; !errors.Is(o.err, ErrNotPaired) {
		t.Fatalf("scheduled backup before pairing = %v, want ErrNotPaired", o.err)
	}
	pairDevice(t, st, testSession, "15550000001")
	tick <- time.Now()
	if o := <-done; o.err != nil || len(o.res.Written) != 2 {
		t.Fatalf("scheduled backup = %+v, %v", o.res, o.err)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}
