// Command blacksky-sandbox runs a local WhatsApp simulator for development
// and tests: real TLS, websocket, noise and Signal, against which the real
// whatsmeow client of a blacksky bot connects. It is a program of its own
// so that the product binary never carries the simulator; a bot reaches it
// only when told to (WA_SANDBOX and WA_SANDBOX_TRUST, printed at start).
//
//	blacksky-sandbox [--listen 127.0.0.1:7878] [--data DIR] [--trust-file PATH] [--contacts N,...]
//	blacksky-sandbox demo [--verbose]   # a narrated run of blacksky run, in process, against an in-process sandbox
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/blacksky-bot/blacksky/internal/cmdline"
	"github.com/blacksky-bot/blacksky/internal/logging"
)

// Exit codes: 2 means the command line needs fixing.
const (
	exitOK      = cmdline.ExitOK
	exitFailure = cmdline.ExitFailure
	exitUsage   = cmdline.ExitUsage
)

// environment is what a command may touch, so tests can run it in-process.
type environment struct {
	stdout, stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	logging.InstallSignalLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := dispatch(ctx, &environment{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, env *environment, args []string) int {
	if len(args) > 0 && args[0] == "demo" {
		return demoCommand(ctx, env, args[1:])
	}
	return serveCommand(ctx, env, args)
}

// parseFlags parses a command's flags as every blacksky program does
// (internal/cmdline).
func parseFlags(env *environment, fs *flag.FlagSet, args []string) int {
	c := cmdline.Command{Name: "blacksky-sandbox", Stdout: env.stdout, Stderr: env.stderr}
	if fs.Name() == c.Name {
		c.Usage = []string{"       blacksky-sandbox demo [flags]   (a narrated run against an in-process sandbox)"}
	} else {
		c.Name += " " + fs.Name()
	}
	return c.Parse(fs, args)
}
