package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// sharedDir is a directory every user may enter, for a binary and a data
// directory that another uid uses (t.TempDir's parents are 0700).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "blacksky-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A data directory the process may not write (a bind-mounted ./data owned
// by the host's user under the image's uid 65532) stops the bot with one
// line naming the directory, the uid and the fix, exit 2; SQLite alone said
// "unable to open database file (14)". The kernel refuses for real: as
// root, which permission bits do not stop, the binary runs as uid 65532
// against a root-owned directory, exactly the container's case; otherwise
// the directory is made read-only for its owner.
func TestDataDirNotWritableIsOneLineAndExitTwo(t *testing.T) {
	data, bin := dataDirForAnotherUser(t)

	for _, args := range [][]string{{"run"}, {"pair"}, {"backup"}} {
		t.Run(args[0], func(t *testing.T) {
			opts := proc.Options{Args: args, Env: []string{"PATH=" + os.Getenv("PATH"), "DATA_DIR=" + data, "PORT=" + fmt.Sprint(freePort(t)), "SESSION_ENCRYPTION_KEY=0123456789abcdef0123"}}
			uid, fix := os.Getuid(), "chmod u+w "+data
			if uid == 0 {
				uid, fix = 65532, "chown -R 65532 "+data
				opts.Credential = &syscall.Credential{Uid: 65532, Gid: 65532}
			} else {
				os.Chmod(data, 0o555)
				defer os.Chmod(data, 0o755)
			}
			code, out := runToEnd(t, bin, opts, 30*time.Second)
			if code != exitUsage {
				t.Errorf("exit code %d, want 2:\n%s", code, out)
			}
			var failure string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.Contains(line, "blacksky "+args[0]+":") {
					if failure != "" {
						t.Errorf("more than one failure line:\n%s", out)
					}
					failure = line
				}
			}
			for _, want := range []string{data, fmt.Sprintf("uid %d", uid), "fix: " + fix, troubleshoot.DataDir.URL()} {
				if !strings.Contains(failure, want) {
					t.Errorf("the failure line lacks %q:\n%s", want, out)
				}
			}
			if entries, _ := os.ReadDir(data); len(entries) != 0 {
				t.Errorf("the data directory was written: %v", entries)
			}
			t.Log(failure)
		})
	}
}

func copyBinary(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// dataDirForAnotherUser makes a data directory and a copy of the binary in
// a directory uid 65532 can reach (t.TempDir's parents are 0700), for the
// tests that run the binary against a directory it may not write.
func dataDirForAnotherUser(t *testing.T) (data, bin string) {
	t.Helper()
	shared := sharedDir(t)
	data = filepath.Join(shared, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(shared, "blacksky")
	copyBinary(t, bins.Blacksky, bin)
	return data, bin
}
