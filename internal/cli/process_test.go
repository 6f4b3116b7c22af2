package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testdb"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// bins are the blacksky and blacksky-sandbox binaries, built once for the
// tests that run them as an operator would.
var bins testkit.Binaries

func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithBinaries(m, &bins))
}

// process is a running blacksky binary and the HTTP port it serves on.
type process struct {
	*proc.Process
	port int
}

// start runs the blacksky binary with env added to a minimal environment.
func start(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	return startProgram(t, bins.Blacksky, env, args...)
}

// startProgram runs bin with env added to a minimal environment.
func startProgram(t *testing.T, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	p := &process{}
	if env["PORT"] == "" {
		p.port = freePort(t)
		env["PORT"] = fmt.Sprint(p.port)
	}
	p.Process = proc.StartT(t, bin, proc.Options{Args: args, Env: proc.Env(t.TempDir(), env)})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	code, err := p.Wait(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// signal sends sig to the process, failing t if it cannot be sent.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// runToEnd runs bin with opts until it exits, at most timeout, and returns
// its exit code and output.
func runToEnd(t *testing.T, bin string, opts proc.Options, timeout time.Duration) (int, string) {
	t.Helper()
	p := proc.StartT(t, bin, opts)
	code, err := p.Wait(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return code, p.Output()
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// waitHTTP polls path until it answers with want, and returns the JSON body.
func (p *process) waitHTTP(t *testing.T, path string, want int) map[string]any {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
	var body map[string]any
	waitFor(t, fmt.Sprintf("%s to answer %d", path, want), func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body = nil
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == want
	}, p)
	return body
}

func TestRunServesAndStopsOnSIGTERM(t *testing.T) {
	backends := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return map[string]string{"DATA_DIR": t.TempDir()} },
		"postgres": func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": testdb.PostgresURL(t), "DATA_DIR": t.TempDir()}
		},
	}
	for name, envFor := range backends {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			p := start(t, env)
			p.waitHTTP(t, "/healthz", http.StatusOK)
			ready := p.waitHTTP(t, "/readyz", http.StatusServiceUnavailable)
			if ready["reason"] != "not paired" {
				t.Errorf("/readyz reason = %v, want \"not paired\"", ready["reason"])
			}
			status := p.waitHTTP(t, "/status", http.StatusOK)
			if status["state"] == "" || status["version"] == "" {
				t.Errorf("/status lacks state or version: %v", status)
			}
			// Every queue of the job engine is scraped, read from this database.
			if body := get(t, p, "/metrics"); !strings.Contains(body, `blacksky_jobs{kind="incoming",state="pending"} 0`) {
				t.Errorf("/metrics lacks the incoming queue's depths:\n%s", body)
			}
			if name == "sqlite" {
				if _, err := os.Stat(filepath.Join(env["DATA_DIR"], "blacksky.db")); err != nil {
					t.Errorf("database file not created: %v", err)
				}
			}
			sentAt := time.Now()
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t, 28*time.Second); code != 0 {
				t.Fatalf("exit code after SIGTERM = %d, want 0", code)
			}
			t.Logf("exited %s after SIGTERM", time.Since(sentAt).Round(time.Millisecond))
			out := p.Output()
			if !strings.Contains(out, "shut down cleanly") {
				t.Errorf("no clean shutdown in the log")
			}
			if strings.Contains(strings.ToLower(out), "logout") || strings.Contains(out, "logged out") {
				t.Errorf("shutdown logged out of WhatsApp")
			}
		})
	}
}

func TestStartupFailuresAreClear(t *testing.T) {
	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	corruptDir := t.TempDir()
	garbage := bytes.Repeat([]byte("garbage!"), 1024)
	os.WriteFile(filepath.Join(corruptDir, "blacksky.db"), garbage, 0o600)

	tests := []struct {
		name string
		env  map[string]string
		code int
		want string
	}{
		{"port in use", map[string]string{"DATA_DIR": t.TempDir(), "PORT": fmt.Sprint(busyPort)}, 1, "set PORT to a free port"},
		{"corrupt sqlite", map[string]string{"DATA_DIR": corruptDir}, 1, "corrupt"},
		{"unreachable postgres", map[string]string{"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/db"}, 1, "connect to PostgreSQL"},
		{"invalid variable", map[string]string{"MAX_MEMORY_MB": "lots"}, 2, "MAX_MEMORY_MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.env)
			if code := p.wait(t, 20*time.Second); code != tt.code {
				t.Errorf("exit code = %d, want %d", code, tt.code)
			}
			if out := p.Output(); !strings.Contains(out, tt.want) || strings.Contains(out, "hunter2") {
				t.Errorf("output lacks %q or reveals a password:\n%s", tt.want, out)
			}
		})
	}
	if after, _ := os.ReadFile(filepath.Join(corruptDir, "blacksky.db")); !bytes.Equal(after, garbage) {
		t.Error("the corrupt database file was changed")
	}
}

// LISTEN_ADDR=127.0.0.1 serves there only (issue 15: always every
// interface): 127.0.0.2, another loopback address, is refused, as it would
// be answered on the default.
func TestListenAddrBindsThere(t *testing.T) {
	for addr, otherAnswers := range map[string]bool{"127.0.0.1": false, "": true} {
		t.Run("LISTEN_ADDR="+addr, func(t *testing.T) {
			env := map[string]string{"DATA_DIR": t.TempDir()}
			if addr != "" {
				env["LISTEN_ADDR"] = addr
			}
			p := start(t, env)
			p.waitHTTP(t, "/healthz", http.StatusOK)
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", p.port), 5*time.Second)
			if err == nil {
				conn.Close()
			}
			if answered := err == nil; answered != otherAnswers {
				t.Errorf("a connection to 127.0.0.2: %v; want answered=%v", err, otherAnswers)
			}
		})
	}
}

// get returns the body of a GET of path on p's HTTP port.
func get(t *testing.T, p *process, path string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
