package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// healthcheckCommand asks this machine's bot whether it is alive: a GET of
// /healthz at the address it listens on (healthAddr). It is the Docker image's HEALTHCHECK,
// which cannot use curl or a shell on a distroless base. Exit 0 when the
// answer is 200, 1 otherwise, also for an invalid configuration: Docker
// reserves exit code 2, and a bot with a bad variable is not running.
func healthcheckCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	cfg, ok := loadConfig(env, "healthcheck")
	if !ok {
		return exitFailure
	}
	url := "http://" + healthAddr(cfg.ListenAddr) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky healthcheck: %v\n", err)
		return exitFailure
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky healthcheck: %s: %v\n", url, err)
		return exitFailure
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(env.stderr, "blacksky healthcheck: %s answered %s\n", url, resp.Status)
		return exitFailure
	}
	fmt.Fprintf(env.stdout, "ok: %s answered %s\n", url, resp.Status)
	return exitOK
}

// healthAddr is where this machine reaches a bot listening on listenAddr:
// that address when LISTEN_ADDR names one (nothing answers on loopback
// then, unless it is loopback), and loopback when the bot listens on every
// interface (no LISTEN_ADDR, 0.0.0.0 or ::).
func healthAddr(listenAddr string) string {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return listenAddr
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
