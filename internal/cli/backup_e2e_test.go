package cli

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dirDigest fingerprints every file in dir, to prove nothing was rewritten.
func dirDigest(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		data, _ := os.ReadFile(filepath.Join(dir, n))
		fmt.Fprintf(h, "%s %x\n", n, sha256.Sum256(data))
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func removeSQLite(t *testing.T, dataDir string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dataDir, "blacksky.db"+suffix)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

func stopBot(t *testing.T, p *process) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 28*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// SQLite on a disk that loses its database: the session comes back from the
// newest backup that is intact, without pairing; a wrong key changes nothing.
func TestSQLiteSessionRestoredFromBackups(t *testing.T) {
	sb := startSandbox(t, "15550000002")
	env := botEnv(t, sb, "")
	env["SESSION_ENCRYPTION_KEY"] = "correct horse battery staple"
	backups := filepath.Join(env["DATA_DIR"], "backups")

	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	stopBot(t, bot) // a clean shutdown takes a backup
	if !strings.Contains(bot.Output(), "backed up the session on shutdown") {
		t.Fatal("no backup on shutdown")
	}
	if code, stdout, stderr := runCLI(t, env, "backup"); code != exitOK {
		t.Fatalf("blacksky backup: exit %d: %s%s", code, stdout, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(backups, "*.bkp"))
	if len(files) != 2 {
		t.Fatalf("backup files: %v; want 2", files)
	}
	sort.Strings(files)
	newest := files[len(files)-1]
	data, _ := os.ReadFile(newest)
	data[len(data)/2] ^= 0xff
	os.WriteFile(newest, data, 0o600)

	t.Run("wrong key changes nothing", func(t *testing.T) {
		removeSQLite(t, env["DATA_DIR"])
		before := dirDigest(t, backups)
		wrong := restartEnv(env)
		wrong["SESSION_ENCRYPTION_KEY"] = "not the key the backups were made with"
		p := start(t, wrong)
		if code := p.wait(t, 20*time.Second); code == 0 {
			t.Fatal("started with a key that opens no backup")
		}
		if !strings.Contains(p.Output(), "SESSION_ENCRYPTION_KEY does not open") {
			t.Errorf("no clear error about the key:\n%s", p.Output())
		}
		if dirDigest(t, backups) != before {
			t.Error("the backups changed")
		}
	})

	t.Run("deleted database", func(t *testing.T) {
		removeSQLite(t, env["DATA_DIR"])
		p := start(t, restartEnv(env))
		p.waitHTTP(t, "/readyz", http.StatusOK)
		out := p.Output()
		if !strings.Contains(out, "restored the session from a backup") || !strings.Contains(out, "skipped an unusable backup") {
			t.Errorf("did not restore from the previous backup past the corrupt one:\n%s", out)
		}
		if strings.Contains(out, "scan this QR code") {
			t.Error("asked to pair although a backup was there")
		}
		stopBot(t, p)
	})

	t.Run("corrupt database", func(t *testing.T) {
		db := filepath.Join(env["DATA_DIR"], "blacksky.db")
		removeSQLite(t, env["DATA_DIR"])
		os.WriteFile(db, []byte(strings.Repeat("this is not sqlite ", 512)), 0o600)
		p := start(t, restartEnv(env))
		p.waitHTTP(t, "/readyz", http.StatusOK)
		if kept, _ := filepath.Glob(db + ".corrupt-*"); len(kept) == 0 {
			t.Error("the corrupt file was not kept aside")
		}
	})
}
