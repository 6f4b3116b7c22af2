// Command blacksky-soak runs one blacksky bot against a local sandbox under
// hours' worth of traffic and reconnects compressed into minutes, samples its
// memory and goroutines, writes a CSV and a PNG plot, and fails (exit 1) when
// memory or goroutines keep growing.
//
//	go run ./cmd/blacksky-soak --duration 5m [--interval 1s] [--out docs/soak] [--rate 50/s] [--drop-every 20s]
//
// Everything listens on and talks to 127.0.0.1 only. Bad flags: one line,
// exit 2.
package main

import (
	"context"
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
	exitOK    = cmdline.ExitOK
	exitFail  = cmdline.ExitFailure
	exitUsage = cmdline.ExitUsage
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is a soak run's settings.
type config struct {
	Duration      time.Duration // idle + load + cool-down
	Idle          time.Duration // each idle phase (before and after the load)
	Interval      time.Duration
	Out           string
	Rate          float64 // API messages per second
	ContactRate   float64 // messages per second from contacts to the bot
	DropEvery     time.Duration
	Binary        string
	SandboxBinary string // the blacksky-sandbox binary; empty builds it
	Contacts      int
	Limits        limits
}

func (c config) load() time.Duration { return c.Duration - 2*c.Idle }

// parseRate reads "50/s", "300/m", "3600/h" or a bare number per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a rate (e.g. 50/s, 300/m)", s)
	}
	switch unit {
	case "", "s":
	case "m":
		n /= 60
	case "h":
		n /= 3600
	default:
		return 0, fmt.Errorf("%q: unit must be /s, /m or /h", s)
	}
	if n > 1000 {
		return 0, fmt.Errorf("%q: at most 1000/s", s)
	}
	return n, nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("blacksky-soak", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c config
	fs.DurationVar(&c.Duration, "duration", 5*time.Minute, "whole run: idle, load, cool-down (setup not counted)")
	fs.DurationVar(&c.Idle, "idle", 0, "length of each idle phase (default: a fifth of --duration, at most 30s)")
	fs.DurationVar(&c.Interval, "interval", time.Second, "sampling interval")
	fs.StringVar(&c.Out, "out", "docs/soak", "directory for soak.csv and soak.png")
	rate := fs.String("rate", "50/s", "API messages to contacts (POST /api/v1/messages)")
	contactRate := fs.String("contact-rate", "5/s", "messages from contacts to the bot (half of them .ping)")
	fs.DurationVar(&c.DropEvery, "drop-every", 20*time.Second, "inject a fault this often under load (drop; every 5th restart, every 7th stream_503); 0 = never")
	fs.StringVar(&c.Binary, "binary", "", "blacksky binary to use (default: build ./cmd/blacksky)")
	fs.StringVar(&c.SandboxBinary, "sandbox-binary", "", "blacksky-sandbox binary to use (default: build ./cmd/blacksky-sandbox)")
	fs.IntVar(&c.Contacts, "contacts", 20, "simulated contacts")
	fs.Float64Var(&c.Limits.RSSGrowthPct, "max-rss-growth", 20, "fail when median RSS in the load's last third exceeds its first third by more than this percentage")
	fs.Float64Var(&c.Limits.GoroutineGrowth, "max-goroutine-growth", 25, "fail when median goroutines grow by more than this (load's last vs first third; cool-down vs idle)")
	fs.Float64Var(&c.Limits.IdleRSSMB, "max-idle-rss", 40, "fail when the idle median RSS is not under this many MB; 0 = no check")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Rate, err = parseRate(*rate); err != nil {
		return c, fmt.Errorf("--rate %v", err)
	}
	if c.ContactRate, err = parseRate(*contactRate); err != nil {
		return c, fmt.Errorf("--contact-rate %v", err)
	}
	switch {
	case c.Interval < 100*time.Millisecond:
		return c, fmt.Errorf("--interval %s: at least 100ms", c.Interval)
	case c.Duration > 24*time.Hour:
		return c, fmt.Errorf("--duration %s: at most 24h", c.Duration)
	case c.Idle < 0:
		return c, fmt.Errorf("--idle %s: must not be negative", c.Idle)
	case c.DropEvery < 0:
		return c, fmt.Errorf("--drop-every %s: must not be negative (0 = never)", c.DropEvery)
	case c.Contacts < 1 || c.Contacts > 200:
		return c, fmt.Errorf("--contacts %d: between 1 and 200", c.Contacts)
	case c.Out == "":
		return c, errors.New("--out: must not be empty")
	case c.Limits.RSSGrowthPct <= 0 || c.Limits.GoroutineGrowth <= 0 || c.Limits.IdleRSSMB < 0:
		return c, errors.New("--max-rss-growth and --max-goroutine-growth must be positive, --max-idle-rss not negative")
	}
	if c.Idle == 0 {
		c.Idle = min(30*time.Second, c.Duration/5)
	}
	if c.load() < 3*c.Interval || c.Idle < c.Interval {
		return c, fmt.Errorf("--duration %s is too short for --idle %s and --interval %s (the load phase needs 3 samples, each idle phase 1)", c.Duration, c.Idle, c.Interval)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: blacksky-soak [--duration 5m] [--interval 1s] [--out docs/soak] [--rate 50/s] [--drop-every 20s] [--binary PATH] [--sandbox-binary PATH] [--idle 30s] [--contact-rate 5/s] [--contacts 20] [--max-rss-growth 20] [--max-goroutine-growth 25] [--max-idle-rss 40]")
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "blacksky-soak: %v\n", err)
		return exitUsage
	}
	res, err := soak(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "blacksky-soak: %v\n", err)
		return exitFail
	}
	v := judge(res.samples, cfg.Limits)
	report(stdout, cfg, res, v)
	if err := writeCSV(cfg.Out, res.samples); err != nil {
		fmt.Fprintf(stderr, "blacksky-soak: %v\n", err)
		return exitFail
	}
	if err := writePlot(cfg.Out, res, v, cfg.Limits.IdleRSSMB); err != nil {
		fmt.Fprintf(stderr, "blacksky-soak: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", csvPath(cfg.Out), pngPath(cfg.Out))
	if !v.ok() {
		return exitFail
	}
	return exitOK
}

func report(w io.Writer, cfg config, res result, v verdict) {
	last := res.samples[len(res.samples)-1]
	fmt.Fprintf(w, "\nsoak: %s (idle %s, load %s, cool-down %s), sampled every %s\n", cfg.Duration, cfg.Idle, cfg.load(), cfg.Idle, cfg.Interval)
	fmt.Fprintf(w, "traffic: %d API messages accepted (%d refused, %d failed, %d skipped), %d delivered, %d pending at the end; %d contact messages; %d faults injected %v\n",
		last.Accepted, res.stats.refused, res.stats.failed, res.stats.skipped, last.Sent, last.Pending, res.stats.inbound, len(res.faults), res.faultCounts())
	fmt.Fprintf(w, "idle RSS (median):           %.1f MB (under 40 MB: %v)\n", v.IdleRSS, v.IdleRSS < 40)
	fmt.Fprintf(w, "RSS under load:              median %.1f MB, max %.1f MB\n", v.LoadRSSMedian, v.LoadRSSMax)
	fmt.Fprintf(w, "RSS after load (median):     %.1f MB\n", v.CooldownRSS)
	fmt.Fprintf(w, "load, first vs last third:   RSS %.1f -> %.1f MB, goroutines %.0f -> %.0f\n", v.FirstRSS, v.LastRSS, v.FirstGor, v.LastGor)
	fmt.Fprintf(w, "goroutines (median):         idle %.0f, load %.0f (max %d), after load %.0f\n", v.IdleGoroutines, v.LoadGoroutines, v.LoadGoroutinesMax, v.CooldownGor)
	if v.ok() {
		fmt.Fprintln(w, "verdict: PASS (memory and goroutines flat)")
		return
	}
	fmt.Fprintln(w, "verdict: FAIL")
	for _, f := range v.Failures {
		fmt.Fprintln(w, "  -", f)
	}
}
