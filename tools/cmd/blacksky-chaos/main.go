// Command blacksky-chaos runs the built blacksky binary against a local
// WhatsApp sandbox for a set time while breaking everything it can: it sends
// messages to many contacts through the HTTP API, injects every sandbox
// fault, kills the bot with SIGKILL and SIGTERM, fails over between two bot
// processes on one database and, when asked, restarts PostgreSQL. Contacts
// are addressed as WhatsApp does now: most have a LID and some of their
// messages go to it, a few start addressed by number and are moved to their
// LID mid-run, and a few numbers have no WhatsApp account (addressing.go).
// At the end it reads every contact's inbox and reports what was sent,
// delivered, lost, duplicated, reordered and dead. It exits 1 when anything
// was lost, duplicated or reordered, or a message to a number without
// WhatsApp ended other than dead, 2 on bad flags, 0 otherwise.
//
//	go run ./cmd/blacksky-chaos --duration 2m [--store sqlite|postgres] [--postgres-url URL]
//	    [--contacts 20] [--rate 20/s] [--seed N] [--restart-postgres] [--json FILE]
//
// See docs/RELIABILITY.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blacksky-bot/blacksky/internal/cmdline"
)

const (
	exitOK      = cmdline.ExitOK
	exitFailure = cmdline.ExitFailure
	exitUsage   = cmdline.ExitUsage
)

// config is what the flags ask for.
type config struct {
	duration  time.Duration
	store     string
	pgURL     string
	contacts  int
	rate      float64 // messages per second, all contacts together
	seed      int64
	restartPG bool
	binary    string
	sandbox   string // the blacksky-sandbox binary
	jsonOut   string
	interval  time.Duration // mean time between two chaos actions
	drain     time.Duration // how long the end waits for the backlog
	keepLogs  bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the chaos and prints the report; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "blacksky-chaos: %v\n", err)
		return exitUsage
	}
	rep, err := chaosRun(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "blacksky-chaos: %v\n", err)
		return exitFailure
	}
	rep.print(stdout)
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, rep); err != nil {
			fmt.Fprintf(stderr, "blacksky-chaos: %v\n", err)
			return exitFailure
		}
	}
	if !rep.OK() {
		return exitFailure
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var rate string
	fs := flag.NewFlagSet("blacksky-chaos", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by run
	fs.DurationVar(&cfg.duration, "duration", 2*time.Minute, "how long to send and break things")
	fs.StringVar(&cfg.store, "store", "sqlite", "sqlite or postgres")
	fs.StringVar(&cfg.pgURL, "postgres-url", os.Getenv("BLACKSKY_TEST_POSTGRES"),
		"admin URL of a PostgreSQL; a fresh database is created on it and dropped at the end")
	fs.IntVar(&cfg.contacts, "contacts", 20, "number of simulated contacts to send to")
	fs.StringVar(&rate, "rate", "20/s", "messages per second (N, N/s or N/m) over all contacts")
	fs.Int64Var(&cfg.seed, "seed", 0, "seed of the chaos schedule (0: from the clock)")
	fs.BoolVar(&cfg.restartPG, "restart-postgres", false,
		"also restart the local PostgreSQL cluster with pg_ctlcluster (never by default: it breaks every other user of it)")
	fs.StringVar(&cfg.binary, "binary", "", "blacksky binary to test (default: build ./cmd/blacksky)")
	fs.StringVar(&cfg.sandbox, "sandbox-binary", "", "blacksky-sandbox binary to test against (default: build ./cmd/blacksky-sandbox)")
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.DurationVar(&cfg.interval, "interval", 3*time.Second, "mean time between two chaos actions")
	fs.DurationVar(&cfg.drain, "drain", 2*time.Minute, "how long the end waits for every message to be delivered or dead")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the processes' logs even when the run passed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	r, err := parseRate(rate)
	if err != nil {
		return cfg, err
	}
	cfg.rate = r
	switch {
	case cfg.duration <= 0:
		return cfg, fmt.Errorf("--duration %s: must be positive, e.g. 2m", cfg.duration)
	case cfg.store != "sqlite" && cfg.store != "postgres":
		return cfg, fmt.Errorf("--store %q: must be sqlite or postgres", cfg.store)
	case cfg.store == "postgres" && cfg.pgURL == "":
		return cfg, errors.New("--store postgres needs --postgres-url (or BLACKSKY_TEST_POSTGRES), e.g. postgres://postgres@127.0.0.1:5432/postgres")
	case cfg.restartPG && cfg.store != "postgres":
		return cfg, errors.New("--restart-postgres needs --store postgres")
	case cfg.contacts < 1 || cfg.contacts > 1000:
		return cfg, fmt.Errorf("--contacts %d: must be between 1 and 1000", cfg.contacts)
	case cfg.interval <= 0 || cfg.drain <= 0:
		return cfg, errors.New("--interval and --drain must be positive")
	}
	if cfg.seed == 0 {
		cfg.seed = time.Now().UnixNano()
	}
	return cfg, nil
}

// parseRate reads "20", "20/s" or "600/m" as messages per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--rate %q: must be a positive number per second, e.g. 20/s or 600/m", s)
	}
	switch unit {
	case "", "s":
		return n, nil
	case "m":
		return n / 60, nil
	}
	return 0, fmt.Errorf("--rate %q: unit must be /s or /m", s)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
