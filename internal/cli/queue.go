package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
)

// withQueueStore runs f with the outgoing queue of the configured database, which
// a bot must have set up: a message queued into a database no bot reads is
// never sent, and a typo in DATA_DIR would otherwise look like success.
// "Set up" is "has blacksky's tables": blacksky run creates them first
// thing, before pairing, so a message queued before the first pairing
// still reaches the bot that waits for it (an account row would not exist
// yet).
func withQueueStore(ctx context.Context, env *environment, cmd string, f func(q *outgoing.Queue) int) int {
	cfg, ok := loadConfig(env, cmd)
	if !ok {
		return exitUsage
	}
	log := newLogger(env, cfg).With("command", cmd)
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky %s: %v%s%s\n", cmd, err, noDatabaseHint(cfg, err), helpFor(err))
		return openFailure(err)
	}
	defer st.Close()
	return f(newQueue(cfg, st, nil, log))
}

func sendCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "recipient: a phone number in international form, or a JID")
	text := fs.String("text", "", "the message")
	key := fs.String("key", "", "idempotency key: sending again with the same key queues nothing new")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if *to == "" || *text == "" {
		fmt.Fprintln(env.stderr, "blacksky send: --to and --text are required (example: blacksky send --to 4915123456789 --text 'hello')")
		return exitUsage
	}
	return withQueueStore(ctx, env, "send", func(q *outgoing.Queue) int {
		msg, created, err := q.Enqueue(ctx, outgoing.Request{To: *to, Text: *text, IdempotencyKey: *key})
		switch {
		case errors.Is(err, outgoing.ErrInvalid):
			fmt.Fprintf(env.stderr, "blacksky send: %v\n", err)
			return exitUsage
		case err != nil:
			fmt.Fprintf(env.stderr, "blacksky send: %v\n", err)
			return exitFailure
		}
		if !created {
			fmt.Fprintf(env.stdout, "message %d (WhatsApp ID %s) was already queued with this key; nothing new queued\n", msg.ID, msg.WAID)
			return exitOK
		}
		fmt.Fprintf(env.stdout, "queued message %d (WhatsApp ID %s) to %s; the running bot delivers it when connected\n", msg.ID, msg.WAID, msg.To)
		return exitOK
	})
}

func queueCommand(ctx context.Context, env *environment, args []string) int {
	sub := "stats"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	state := fs.String("state", "", "list only messages in this state: pending, sending, sent or dead")
	limit := fs.Int("limit", 50, "list at most this many messages")
	all := fs.Bool("all-dead", false, "retry: every dead message; purge: every dead message")
	if isHelp(sub) {
		fmt.Fprintln(env.stdout, "Usage: blacksky queue [stats | list [--state S] [--limit N] | retry ID|--all-dead | purge ID|--all-dead]")
		return exitOK
	}
	fs.SetOutput(nilWriter{})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(env.stdout, "Usage: blacksky queue [stats | list [--state S] [--limit N] | retry ID|--all-dead | purge ID|--all-dead]")
			return exitOK
		}
		fmt.Fprintf(env.stderr, "blacksky queue %s: %v; run 'blacksky queue --help'\n", sub, err)
		return exitUsage
	}
	var id int64
	if sub == "retry" || sub == "purge" {
		if !*all {
			n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
			if err != nil || n <= 0 {
				fmt.Fprintf(env.stderr, "blacksky queue %s: give a message ID or --all-dead (example: blacksky queue %s 42)\n", sub, sub)
				return exitUsage
			}
			id = n
		}
	} else if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "blacksky queue %s: unexpected argument %q\n", sub, fs.Arg(0))
		return exitUsage
	}
	var run func(*outgoing.Queue) error
	switch sub {
	case "stats":
		run = func(q *outgoing.Queue) error { return queueStats(ctx, env, q) }
	case "list":
		run = func(q *outgoing.Queue) error {
			return queueList(ctx, env, q, outgoing.Filter{State: outgoing.State(*state), Limit: *limit})
		}
	case "retry":
		run = func(q *outgoing.Queue) error { return queueRetry(ctx, env, q, id) }
	case "purge":
		run = func(q *outgoing.Queue) error { return queuePurge(ctx, env, q, id) }
	default:
		fmt.Fprintf(env.stderr, "blacksky queue: unknown subcommand %q; use stats, list, retry or purge\n", sub)
		return exitUsage
	}
	return withQueueStore(ctx, env, "queue", func(q *outgoing.Queue) int {
		err := run(q)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, outgoing.ErrInvalid), errors.Is(err, outgoing.ErrNotFound), errors.Is(err, outgoing.ErrWrongState):
			fmt.Fprintf(env.stderr, "blacksky queue %s: %v\n", sub, err)
			return exitUsage
		default:
			fmt.Fprintf(env.stderr, "blacksky queue %s: %v\n", sub, err)
			return exitFailure
		}
	})
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func queueStats(ctx context.Context, env *environment, q *outgoing.Queue) error {
	depths, err := q.Depths(ctx)
	if err != nil {
		return err
	}
	age, err := q.OldestPendingAge(ctx)
	if err != nil {
		return err
	}
	for _, s := range outgoing.States() {
		fmt.Fprintf(env.stdout, "%-8s %d\n", s, depths[s])
	}
	fmt.Fprintf(env.stdout, "oldest pending: %s\n", age.Round(time.Second))
	return nil
}

func queueList(ctx context.Context, env *environment, q *outgoing.Queue, f outgoing.Filter) error {
	msgs, err := q.List(ctx, f)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tTO\tATTEMPTS\tCREATED\tLAST ERROR")
	for _, m := range msgs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.State, m.To, m.Attempts, m.CreatedAt.Format(time.RFC3339), m.LastError)
	}
	return w.Flush()
}

func queueRetry(ctx context.Context, env *environment, q *outgoing.Queue, id int64) error {
	if id == 0 {
		n, err := q.RetryAllDead(ctx)
		if err == nil {
			fmt.Fprintf(env.stdout, "%d dead messages queued again\n", n)
		}
		return err
	}
	m, err := q.Retry(ctx, id)
	if err == nil {
		fmt.Fprintf(env.stdout, "message %d queued again (%s)\n", m.ID, m.State)
	}
	return err
}

func queuePurge(ctx context.Context, env *environment, q *outgoing.Queue, id int64) error {
	if id == 0 {
		n, err := q.PurgeDead(ctx)
		if err == nil {
			fmt.Fprintf(env.stdout, "%d dead messages purged\n", n)
		}
		return err
	}
	err := q.Purge(ctx, id)
	if err == nil {
		fmt.Fprintf(env.stdout, "message %d purged\n", id)
	}
	return err
}
