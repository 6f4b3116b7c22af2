package cli

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to look at a test database

	"github.com/blacksky-bot/blacksky/internal/testdb"
	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// runBinary runs the built blacksky in dir with only vars (and PATH) set,
// and returns its exit code and output.
func runBinary(t *testing.T, dir string, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	return runToEnd(t, bins.Blacksky, proc.Options{Args: args, Dir: dir, Env: proc.Env(dir, vars)}, 60*time.Second)
}

// tree lists every file and directory under dir.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if path != dir {
			names = append(names, strings.TrimPrefix(path, dir))
		}
		return err
	})
	return names
}

// pgTables lists the tables of the database at url.
func pgTables(t *testing.T, url string) []string {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return testdb.Strings(t, db, "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
}

var reportLine = regexp.MustCompile(`^(ok|warn|FAIL) +[a-z ]+ \S.*$`)

// reportLines checks that every line of a doctor report is one finding
// and that each warn and FAIL line says where to read, and returns them.
func reportLines(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for _, l := range lines {
		if !reportLine.MatchString(l) {
			t.Errorf("not a finding on one line: %q\nin:\n%s", l, out)
		}
		if !strings.HasPrefix(l, "ok") && !strings.Contains(l, "; see https://github.com/blacksky-bot/blacksky/blob/main/docs/TROUBLESHOOTING.md#") {
			t.Errorf("a problem without where to read: %q", l)
		}
	}
	return lines
}

func linesWith(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// doctor on a fresh machine changes nothing: no ./data, no blacksky.db
// (issue 15: it made both), and says that blacksky run creates them.
func TestDoctorInAnEmptyDirectoryCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	code, out := runBinary(t, dir, map[string]string{"PORT": "1"}, "doctor")
	if code != exitOK {
		t.Errorf("doctor on a fresh machine: exit %d; want 0 (nothing is wrong yet):\n%s", code, out)
	}
	lines := reportLines(t, out)
	if got := linesWith(lines, "warn  database"); len(got) != 1 || !strings.Contains(got[0], "no database yet at data/blacksky.db; 'blacksky run' creates it") {
		t.Errorf("database lines %q; want one saying there is no database yet", got)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("doctor created %v", got)
	}
}

// doctor on a PostgreSQL database no bot has used leaves it without
// tables: goose's check made its version table.
func TestDoctorOnAFreshPostgresCreatesNoTable(t *testing.T) {
	url := testdb.PostgresURL(t)
	dir := t.TempDir()
	code, out := runBinary(t, dir, map[string]string{"PORT": "1", "DATABASE_URL": url}, "doctor")
	lines := reportLines(t, out)
	if code != exitOK || len(linesWith(lines, "ok    database")) != 1 || len(linesWith(lines, "warn  schema    no blacksky tables yet")) != 1 {
		t.Errorf("doctor on a fresh database: exit %d; want 0, the database answering and no tables yet:\n%s", code, out)
	}
	if got := pgTables(t, url); len(got) != 0 {
		t.Errorf("doctor created tables %v", got)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("doctor created %v", got)
	}
}

// Every bad variable is a line of its own, exit 2, and the checks that do
// not read a bad variable still run; those that do are left out rather
// than run on a default the operator did not choose.
func TestDoctorListsEveryBadVariableAndChecksTheRest(t *testing.T) {
	dir := t.TempDir()
	code, out := runBinary(t, dir, map[string]string{
		"PORT": "http", "LOG_LEVEL": "loud", "MAX_MEMORY_MB": "lots",
		"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/db?sslmode=bogus",
	}, "doctor")
	if code != exitUsage {
		t.Errorf("exit %d; want 2 for bad variables", code)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the report reveals the password:\n%s", out)
	}
	lines := reportLines(t, out)
	config := linesWith(lines, "FAIL  config")
	for i, v := range []string{"DATABASE_URL=", "PORT=", "LOG_LEVEL=", "MAX_MEMORY_MB="} {
		if i >= len(config) || !strings.Contains(config[i], v) {
			t.Errorf("config lines %q; want one per bad variable, %s as number %d", config, v, i+1)
		}
	}
	if len(config) != 4 {
		t.Errorf("%d config lines; want 4", len(config))
	}
	for _, want := range []string{"ok    data dir", "warn  api token"} {
		if len(linesWith(lines, want)) != 1 {
			t.Errorf("no %q line: the checks that read no bad variable must run:\n%s", want, out)
		}
	}
	for _, skipped := range []string{"database", "port", "memory"} {
		for _, l := range lines {
			if strings.Contains(l, "  "+skipped+" ") && !strings.HasPrefix(l, "FAIL  config") {
				t.Errorf("%q: the %s check reads a bad variable and must not run", l, skipped)
			}
		}
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("doctor created %v", got)
	}
}

// Runtime problems exit 1, each on its line: an unreachable PostgreSQL is
// one line (it was the dial error twice over several), listed beside the
// rest of the report.
func TestDoctorRuntimeProblemsExitOne(t *testing.T) {
	code, out := runBinary(t, t.TempDir(), map[string]string{"PORT": "1", "DATABASE_URL": "postgres://u:hunter2@localhost:1/db"}, "doctor")
	if code != exitFailure {
		t.Errorf("exit %d; want 1 for an unreachable database", code)
	}
	lines := reportLines(t, out)
	db := linesWith(lines, "FAIL  database")
	if len(db) != 1 || strings.Count(db[0], "connection refused") != 1 || !strings.Contains(db[0], `"db" on localhost:1`) || strings.Contains(out, "hunter2") {
		t.Errorf("database lines %q; want one naming db on localhost:1 with the reason once, no password", db)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "warn  api token") }) {
		t.Errorf("the other checks did not run:\n%s", out)
	}
}

// A data directory the bot could not write is found without writing to it
// (doctor wrote a probe file), and is a runtime problem: exit 1. As in
// TestDataDirNotWritableIsOneLineAndExitTwo, root runs the binary as uid
// 65532 against its directory.
func TestDoctorFindsAnUnwritableDataDirWithoutWriting(t *testing.T) {
	data, bin := dataDirForAnotherUser(t)
	opts := proc.Options{Args: []string{"doctor"}, Env: []string{"PATH=" + os.Getenv("PATH"), "DATA_DIR=" + data, "PORT=" + fmt.Sprint(freePort(t))}}
	uid := os.Getuid()
	if uid == 0 {
		uid = 65532
		opts.Credential = &syscall.Credential{Uid: 65532, Gid: 65532}
	} else {
		os.Chmod(data, 0o555)
		defer os.Chmod(data, 0o755)
	}
	code, out := runToEnd(t, bin, opts, 30*time.Second)
	if code != exitFailure {
		t.Errorf("exit %d; want 1:\n%s", code, out)
	}
	got := linesWith(reportLines(t, out), "FAIL  data dir")
	if len(got) != 1 || !strings.Contains(got[0], data) || !strings.Contains(got[0], fmt.Sprintf("uid %d", uid)) || !strings.Contains(got[0], "fix: ") {
		t.Errorf("data dir lines %q; want one naming %s, uid %d and the fix", got, data, uid)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("doctor wrote into the data directory: %v", entries)
	}
}
