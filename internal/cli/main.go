// Package cli is the blacksky command line: run, pair, doctor, send, queue,
// backup, restore and the rest, for the blacksky binary (cmd/blacksky) and
// for any bot binary built with the public package blacksky. Each command
// prints one line saying what to fix and exits 2 for bad input, exits 1 for
// runtime failures, and never logs secrets.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/cmdline"
	"github.com/blacksky-bot/blacksky/internal/logging"
)

// Exit codes: 2 means the command line or configuration needs fixing.
const (
	exitOK      = cmdline.ExitOK
	exitFailure = cmdline.ExitFailure
	exitUsage   = cmdline.ExitUsage
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) int
}

// environment is what a command may touch, so tests can run commands in-process.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)
	// program is the bot binary the command runs in: its version and
	// its own commands.
	program Program
}

func commands() map[string]command {
	return map[string]command{
		"run":         {"connect and run the bot (the default)", runCommand},
		"pair":        {"link the bot as a WhatsApp device, then exit", pairCommand},
		"doctor":      {"check configuration, database and session, and say what to fix", doctorCommand},
		"healthcheck": {"exit 0 if this machine's bot answers /healthz (the Docker HEALTHCHECK)", healthcheckCommand},
		"version":     {"print the version", versionCommand},
		"send":        {"queue a message from the shell; the running bot delivers it", sendCommand},
		"queue":       {"show the outgoing queue; list, retry or purge messages", queueCommand},
		"jobs":        {"every kind of work (outgoing, incoming, webhook): depths, list, retry, purge", jobsCommand},
		"backup":      {"take an encrypted backup of the session now", backupCommand},
		"restore":     {"restore the session from the newest backup or a file (bot stopped)", restoreCommand},
		"sandbox":     {"moved to blacksky-sandbox (go run ./cmd/blacksky-sandbox)", movedCommand("sandbox")},
		"demo":        {"moved to blacksky-sandbox (go run ./cmd/blacksky-sandbox demo)", movedCommand("demo")},
	}
}

// Program is a bot binary: the blacksky command line with its own commands.
type Program struct {
	// Version, when set, is what the binary calls itself (cmd/blacksky's
	// -ldflags "-X main.version=..."); empty: derived from Go's build
	// information.
	Version string
	// Register adds the program's own commands to the bot, beside the
	// built-in ones (menu, help, ping, status, and the owner's queue,
	// backup, reconnect); nil adds none.
	Register func(*bot.Bot)
}

// Main runs the command line on args (os.Args[1:]) until a signal or the
// command ends it, and returns the exit code.
func (p Program) Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logging.InstallSignalLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	return p.Run(ctx, args, os.Stdout, os.Stderr, os.LookupEnv)
}

// Run is Main for programs that embed the command line in-process (the
// narrated demo of blacksky-sandbox runs "run" this way, so it shows the
// product's own composition root, not a copy of it): the command ends with
// ctx, as Main's ends with a signal; it writes to stdout and stderr and
// reads its configuration through getenv only (os.LookupEnv for the
// process's environment). Run handles no signals.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	return dispatch(ctx, &environment{stdout: stdout, stderr: stderr, getenv: getenv, program: p}, args)
}

func dispatch(ctx context.Context, env *environment, args []string) int {
	if len(args) > 0 && isHelp(args[0]) {
		usage(env.stdout)
		return exitOK
	}
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(env.stderr, "blacksky: unknown command %q; run 'blacksky --help' for the list\n", name)
		return exitUsage
	}
	return cmd.run(ctx, env, args)
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: blacksky <command> [flags]   (no command means 'run')")
	fmt.Fprintln(w, "\nCommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from environment variables; see the README.")
	fmt.Fprintln(w, "Run 'blacksky <command> --help' for a command's flags.")
}

// parseFlags parses a command's flags; on a bad flag it prints one line and
// returns exitUsage, on --help the flags and exitOK, otherwise -1.
func parseFlags(env *environment, fs *flag.FlagSet, args []string) int {
	return cmdline.Command{Name: "blacksky " + fs.Name(), Stdout: env.stdout, Stderr: env.stderr}.Parse(fs, args)
}

func versionCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	fmt.Fprintln(env.stdout, env.program.versionLine())
	return exitOK
}
