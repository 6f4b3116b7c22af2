package cli

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func serverPort(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestHealthcheckExitsZeroOnlyWhenHealthzAnswers200(t *testing.T) {
	answer := func(code int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
		}))
	}
	healthy, failing := answer(http.StatusOK), answer(http.StatusServiceUnavailable)
	defer healthy.Close()
	defer failing.Close()
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hanging.Close()
	closed := fmt.Sprint(freePort(t))

	tests := []struct {
		name, port string
		args       []string
		code       int
		want       string
	}{
		{"healthy", serverPort(t, healthy), nil, exitOK, "200"},
		{"503", serverPort(t, failing), nil, exitFailure, "503"},
		{"nothing listening", closed, nil, exitFailure, "connection refused"},
		{"no answer in time", serverPort(t, hanging), []string{"--timeout", "200ms"}, exitFailure, "deadline exceeded"},
		{"invalid configuration", "http", nil, exitFailure, "PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, map[string]string{"PORT": tt.port}, append([]string{"healthcheck"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d, output %q; want exit %d mentioning %q", code, stdout+stderr, tt.code, tt.want)
			}
			if lines := strings.Count(stdout+stderr, "\n"); lines != 1 {
				t.Errorf("%d lines of output; want one", lines)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %s; a healthcheck must answer within its timeout", elapsed)
			}
		})
	}
}

// The image's HEALTHCHECK against the real binary: healthy while it runs.
func TestHealthcheckAgainstTheRunningBot(t *testing.T) {
	p := start(t, map[string]string{"DATA_DIR": t.TempDir()})
	p.waitHTTP(t, "/healthz", http.StatusOK)
	code, stdout, stderr := runCLI(t, map[string]string{"PORT": fmt.Sprint(p.port)}, "healthcheck")
	if code != exitOK {
		t.Errorf("healthcheck of a running bot: exit %d, %q", code, stdout+stderr)
	}
}

// A bot bound to one address (LISTEN_ADDR) answers only there: the
// healthcheck asks it there, not on 127.0.0.1 where nothing listens (issue
// 15). 127.0.0.2 is loopback too on Linux, and distinct from 127.0.0.1.
func TestHealthcheckAsksTheListenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := serverPort(t, srv)
	code, stdout, stderr := runCLI(t, map[string]string{"LISTEN_ADDR": "127.0.0.2", "PORT": port}, "healthcheck")
	if code != exitOK || !strings.Contains(stdout, "127.0.0.2:"+port) {
		t.Errorf("healthcheck of a bot on LISTEN_ADDR=127.0.0.2: exit %d, %q; want 0, asking 127.0.0.2:%s", code, stdout+stderr, port)
	}
}

func TestHealthAddr(t *testing.T) {
	for listen, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		"127.0.0.1:8080": "127.0.0.1:8080",
		"10.1.2.3:9000":  "10.1.2.3:9000",
		"[::1]:8080":     "[::1]:8080",
	} {
		if got := healthAddr(listen); got != want {
			t.Errorf("healthAddr(%q) = %q; want %q", listen, got, want)
		}
	}
}
