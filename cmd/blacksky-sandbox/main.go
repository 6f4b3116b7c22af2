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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/blacksky-bot/blacksky/internal/logging"
)

// Exit codes: 2 means the command line needs fixing.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
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

// parseFlags parses a command's flags; on a bad flag it prints one line and
// returns exitUsage, on --help the flags and exitOK, otherwise -1.
func parseFlags(env *environment, fs *flag.FlagSet, args []string) int {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	name := "blacksky-sandbox"
	if fs.Name() != name {
		name += " " + fs.Name()
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(env.stdout)
		fmt.Fprintf(env.stdout, "Usage: %s [flags]\n", name)
		if fs.Name() == "blacksky-sandbox" {
			fmt.Fprintln(env.stdout, "       blacksky-sandbox demo [flags]   (a narrated run against an in-process sandbox)")
		}
		fs.PrintDefaults()
		return exitOK
	case err != nil:
		fmt.Fprintf(env.stderr, "%s: %v; run '%s --help'\n", name, err, name)
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(env.stderr, "%s: unexpected argument %q; run '%s --help'\n", name, fs.Arg(0), name)
		return exitUsage
	}
	return -1
}
