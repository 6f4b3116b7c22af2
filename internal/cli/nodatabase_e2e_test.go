package cli

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testdb"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// The commands that queue into, or read, the bot's database.
var queueCommands = [][]string{
	{"send", "--to", "4915123456789", "--text", "hello"},
	{"queue"},
	{"queue", "list"},
	{"queue", "retry", "--all-dead"},
}

// oneLine checks that out is one line and returns it.
func theLine(t *testing.T, out string) string {
	t.Helper()
	if strings.Count(strings.TrimRight(out, "\n"), "\n") != 0 {
		t.Errorf("output is not one line:\n%s", out)
	}
	return strings.TrimSpace(out)
}

// A message queued where no bot reads is never sent: send and queue in a
// directory no bot has run in refuse, say which data directory they looked
// at and what to do, and create nothing (issue 15: send made an empty
// database and said "the running bot delivers it").
func TestQueueCommandsRefuseAMissingDatabase(t *testing.T) {
	for _, args := range queueCommands {
		t.Run(strings.Join(args[:min(2, len(args))], " "), func(t *testing.T) {
			dir := t.TempDir()
			code, out := runBinary(t, dir, nil, args...)
			line := theLine(t, out)
			if code != exitUsage {
				t.Errorf("exit %d; want 2: %s", code, line)
			}
			for _, want := range []string{"blacksky " + args[0] + ": ", "no database at data/blacksky.db", "DATA_DIR=./data", "blacksky run", "set DATA_DIR"} {
				if !strings.Contains(line, want) {
					t.Errorf("%q lacks %q", line, want)
				}
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Errorf("created %v", got)
			}
		})
	}
}

// A SQLite file without blacksky's tables is not a bot's either, and is
// left as it was.
func TestSendRefusesASQLiteFileNoBotHasUsed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blacksky.db")
	st := testkit.OpenStore(t, store.Options{SQLitePath: path})
	if _, err := st.DB().Exec("CREATE TABLE notes (x TEXT)"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := tree(t, dir)
	code, out := runBinary(t, dir, map[string]string{"DATA_DIR": dir}, queueCommands[0]...)
	line := theLine(t, out)
	if code != exitUsage || !strings.Contains(line, path+" has no blacksky tables") || !strings.Contains(line, "DATA_DIR="+dir) {
		t.Errorf("exit %d, %q; want 2 saying %s has no blacksky tables, naming DATA_DIR", code, line, path)
	}
	if after := tree(t, dir); !slices.Equal(before, after) {
		t.Errorf("files before %v, after %v", before, after)
	}
}

// On PostgreSQL: a database without blacksky's tables is refused with its
// name and host, never the password, and no table appears.
func TestQueueCommandsRefuseAFreshPostgres(t *testing.T) {
	u, err := url.Parse(testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// A password the server does not ask for (trust) but must not be shown.
	u.User = url.UserPassword(u.User.Username(), "hunter2")
	for _, args := range queueCommands[:2] {
		code, out := runBinary(t, t.TempDir(), map[string]string{"DATABASE_URL": u.String()}, args...)
		line := theLine(t, out)
		want := fmt.Sprintf("PostgreSQL database %q on %s has no blacksky tables", strings.TrimPrefix(u.Path, "/"), u.Host)
		if code != exitUsage || !strings.Contains(line, want) || !strings.Contains(line, "DATABASE_URL") || strings.Contains(line, "hunter2") {
			t.Errorf("%v: exit %d, %q; want 2 with %q, naming DATABASE_URL, no password", args, code, line, want)
		}
	}
	if got := pgTables(t, u.String()); len(got) != 0 {
		t.Errorf("tables appeared: %v", got)
	}
}

// A database the bot has set up takes messages before it is paired: they
// go out when it is (no account row is needed).
func TestSendQueuesIntoADatabaseABotHasSetUp(t *testing.T) {
	dir := migratedDataDir(t)
	code, out := runBinary(t, dir, map[string]string{"DATA_DIR": dir}, queueCommands[0]...)
	if code != exitOK || !strings.Contains(out, "queued message 1") {
		t.Errorf("exit %d, %q; want the message queued", code, out)
	}
}

// A bot's data directory the process may not write stops send and queue
// as it stops run: one line naming the directory, the uid and the fix,
// exit 2 (they said it at exit 1). As in
// TestDataDirNotWritableIsOneLineAndExitTwo, root runs the binary as uid
// 65532 against its directory.
func TestQueueCommandsOnAnUnwritableDataDir(t *testing.T) {
	shared := sharedDir(t)
	data := filepath.Join(shared, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	st := testkit.OpenStore(t, store.Options{SQLitePath: filepath.Join(data, "blacksky.db")})
	testkit.Migrate(t, st)
	st.Close()
	os.Remove(filepath.Join(data, "blacksky.db.migrate-lock"))
	os.Chmod(filepath.Join(data, "blacksky.db"), 0o644)
	bin := filepath.Join(shared, "blacksky")
	copyBinary(t, bins.Blacksky, bin)
	before := tree(t, data)
	for _, args := range queueCommands[:2] {
		opts := proc.Options{Args: args, Env: []string{"PATH=" + os.Getenv("PATH"), "DATA_DIR=" + data}}
		uid, fix := os.Getuid(), "chmod u+w "+data
		if uid == 0 {
			uid, fix = 65532, "chown -R 65532 "+data
			opts.Credential = &syscall.Credential{Uid: 65532, Gid: 65532}
		} else {
			os.Chmod(data, 0o555)
		}
		code, out := runToEnd(t, bin, opts, 30*time.Second)
		os.Chmod(data, 0o755)
		line := theLine(t, out)
		if code != exitUsage {
			t.Errorf("%v: exit %d; want 2: %s", args, code, line)
		}
		for _, want := range []string{"blacksky " + args[0] + ": ", data, fmt.Sprintf("uid %d", uid), "fix: " + fix} {
			if !strings.Contains(line, want) {
				t.Errorf("%v: %q lacks %q", args, line, want)
			}
		}
	}
	if after := tree(t, data); !slices.Equal(before, after) {
		t.Errorf("files before %v, after %v", before, after)
	}
}

// migratedDataDir is the data directory of a bot that has run once: its
// SQLite database with blacksky's tables, and nothing else.
func migratedDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st := testkit.OpenStore(t, store.Options{SQLitePath: filepath.Join(dir, "blacksky.db")})
	testkit.Migrate(t, st)
	st.Close()
	return dir
}
