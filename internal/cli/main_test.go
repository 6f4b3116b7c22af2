package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	thirdparty "github.com/blacksky-bot/blacksky/third_party"
)

// runCLI runs the CLI in-process with the given environment.
func runCLI(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
	code = dispatch(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad flag", nil, []string{"run", "--nope"}, "flag provided but not defined: -nope"},
		{"stray argument", nil, []string{"version", "extra"}, `unexpected argument "extra"`},
		{"bad pair phone", map[string]string{"DATA_DIR": t.TempDir()}, []string{"pair", "--phone", "abc"}, "--phone"},
		{"bad port", map[string]string{"PORT": "http"}, []string{"run"}, `PORT="http"`},
		{"bad database url", map[string]string{"DATABASE_URL": "mysql://u:hunter2@h/db"}, []string{"run"}, "DATABASE_URL"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, []string{"queue"}, "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.vars, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q; want one line containing %q", stderr, tt.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr reveals a password: %q", stderr)
			}
		})
	}
}

// Several bad variables give one line each, all of them (issue 15).
func TestEveryBadVariableHasItsLine(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"PORT": "http", "LOG_LEVEL": "loud", "LISTEN_ADDR": "localhost"}, "run")
	if code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("stderr has %d lines, want one per bad variable:\n%s", len(lines), stderr)
	}
	for i, name := range []string{"PORT=", "LOG_LEVEL=", "LISTEN_ADDR="} {
		if !strings.HasPrefix(lines[i], "blacksky run: "+name) {
			t.Errorf("line %d = %q; want it about %s", i+1, lines[i], name)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"run", "--help"}, {"pair", "-h"}, {"doctor", "--help"}, {"version", "--help"}} {
		code, stdout, _ := runCLI(t, nil, args...)
		if code != exitOK || !strings.Contains(stdout, "Usage: blacksky") {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "blacksky ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	// The binary is built from the patched copy in third_party: its
	// version says so and names every patch.
	out, err := exec.Command(bins.Blacksky, "version").Output()
	if err != nil {
		t.Fatalf("blacksky version: %v", err)
	}
	for _, p := range append(thirdparty.WhatsmeowPatches(), "whatsmeow v0.0.0-", "patched") {
		if !strings.Contains(string(out), p) {
			t.Errorf("version %q does not mention %q", out, p)
		}
	}
}

// Program.Run is the command line in-process: the caller's writers and
// environment (never the process's), and the caller's context ends "run"
// as a signal ends Main, with the same clean shutdown.
func TestMainInProcessThroughRun(t *testing.T) {
	var out, errOut bytes.Buffer
	vars := map[string]string{"PORT": "http"}
	getenv := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	if code := (Program{Version: "v9.9.9-embedded"}).Run(context.Background(), []string{"version"}, &out, &errOut, getenv); code != exitOK || !strings.HasPrefix(out.String(), "blacksky v9.9.9-embedded ") {
		t.Errorf("version through Run: exit %d, stdout %q", code, out.String())
	}
	if code := (Program{}).Run(context.Background(), []string{"run"}, &out, &errOut, getenv); code != exitUsage || !strings.Contains(errOut.String(), `PORT="http"`) {
		t.Errorf("run with the caller's PORT=http: exit %d, stderr %q; want 2 naming PORT", code, errOut.String())
	}

	vars = map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- (Program{}).Run(ctx, []string{"run"}, io.Discard, logs, getenv) }()
	waitFor(t, "the embedded run to serve /healthz", func() bool {
		resp, err := http.Get("http://" + vars["LISTEN_ADDR"] + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(logs.String(), "shut down cleanly") {
			t.Errorf("run ended by its context: exit %d, want 0 after a clean shutdown:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not end within 30 s of its context")
	}
}

// doctor on the data directory of a bot that has run reads its database
// (read-only: the files are as they were) and says what is left to do.
func TestDoctorOnADatabaseABotHasSetUp(t *testing.T) {
	dir := migratedDataDir(t)
	before := tree(t, dir)
	code, stdout, _ := runCLI(t, map[string]string{"DATA_DIR": dir, "PORT": "1"}, "doctor")
	if code != exitOK {
		t.Fatalf("doctor exit %d on a bot's data dir:\n%s", code, stdout)
	}
	for _, want := range []string{"ok    database", "ok    schema    up to date", `warn  session   "default" is not paired`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, stdout)
		}
	}
	if after := tree(t, dir); !slices.Equal(before, after) {
		t.Errorf("files before doctor %v, after %v", before, after)
	}
}
