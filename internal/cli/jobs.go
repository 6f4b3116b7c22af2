package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

const jobsUsage = "Usage: blacksky jobs [list KIND [--state S] [--limit N] | retry KIND ID|--all-dead | purge KIND ID|--all-dead]   (KIND: outgoing, incoming, webhook)"

// jobsCommand shows and repairs every kind of durable work the way
// /api/v1/jobs does: depths and lag, a kind's list, retry and purge of
// dead work. A dead incoming message or a dead webhook event is handled
// like a dead outgoing message.
func jobsCommand(ctx context.Context, env *environment, args []string) int {
	sub := "stats"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	if isHelp(sub) {
		fmt.Fprintln(env.stdout, jobsUsage)
		return exitOK
	}
	kind := ""
	if sub != "stats" {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			fmt.Fprintf(env.stderr, "blacksky jobs %s: name the kind of work (outgoing, incoming or webhook); %s\n", sub, jobsUsage)
			return exitUsage
		}
		kind, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	state := fs.String("state", "", "list only work in this state (pending, handled, dead; outgoing: pending, sending, sent, dead; webhook: pending, delivered, dead)")
	limit := fs.Int("limit", 50, "list at most this many")
	all := fs.Bool("all-dead", false, "retry or purge every dead item of the kind")
	fs.SetOutput(nilWriter{})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(env.stdout, jobsUsage)
			return exitOK
		}
		fmt.Fprintf(env.stderr, "blacksky jobs %s: %v; run 'blacksky jobs --help'\n", sub, err)
		return exitUsage
	}
	if (sub == "stats" || sub == "list") && fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "blacksky jobs %s: unexpected argument %q; %s\n", sub, fs.Arg(0), jobsUsage)
		return exitUsage
	}
	return withJobKinds(ctx, env, func(kinds map[string]httpapi.Jobs) int {
		if sub == "stats" {
			return printJobStats(ctx, env, kinds)
		}
		q, ok := kinds[kind]
		if !ok {
			fmt.Fprintf(env.stderr, "blacksky jobs %s: no kind of work %q; known: outgoing, incoming, webhook\n", sub, kind)
			return exitUsage
		}
		switch sub {
		case "list":
			return listJobs(ctx, env, q, *state, *limit)
		case "retry", "purge":
			return repairJobs(ctx, env, sub, kind, q, fs.Args(), *all)
		}
		fmt.Fprintf(env.stderr, "blacksky jobs: unknown subcommand %q; %s\n", sub, jobsUsage)
		return exitUsage
	})
}

// withJobKinds runs f with every kind of work of the configured database,
// which a bot must have set up (as for blacksky queue).
func withJobKinds(ctx context.Context, env *environment, f func(map[string]httpapi.Jobs) int) int {
	cfg, ok := loadConfig(env, "jobs")
	if !ok {
		return exitUsage
	}
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky jobs: %v%s%s\n", err, noDatabaseHint(cfg, err), helpFor(err))
		return openFailure(err)
	}
	defer st.Close()
	kinds := map[string]httpapi.Jobs{}
	for _, t := range []jobs.Table{outgoing.Table, bot.InboxTable, webhook.Table} {
		q, err := jobs.New(st.DB(), st.Engine(), t, cfg.SessionID, nil)
		if err != nil {
			fmt.Fprintf(env.stderr, "blacksky jobs: %v\n", err)
			return exitFailure
		}
		kinds[t.Kind] = q
	}
	return f(kinds)
}

func printJobStats(ctx context.Context, env *environment, kinds map[string]httpapi.Jobs) int {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATES\tLAG")
	for _, kind := range []string{"outgoing", "incoming", "webhook"} {
		q := kinds[kind]
		d, err := q.Depths(ctx)
		if err != nil {
			return jobsFailure(env, err)
		}
		lag, err := q.Lag(ctx)
		if err != nil {
			return jobsFailure(env, err)
		}
		line := ""
		for _, s := range q.States() {
			line += fmt.Sprintf("%s %d  ", s, d[s])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", kind, line, lag.Round(time.Second))
	}
	tw.Flush()
	return exitOK
}

func listJobs(ctx context.Context, env *environment, q httpapi.Jobs, state string, limit int) int {
	if state != "" && !slices.Contains(q.States(), state) {
		fmt.Fprintf(env.stderr, "blacksky jobs list: --state %q: must be one of %v\n", state, q.States())
		return exitUsage
	}
	if limit < 1 || limit > 1000 {
		fmt.Fprintln(env.stderr, "blacksky jobs list: --limit must be 1 to 1000")
		return exitUsage
	}
	list, err := q.List(ctx, state, 0, limit)
	if err != nil {
		return jobsFailure(env, err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tCHAT\tUPDATED\tLAST ERROR")
	for _, j := range list {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.State, j.Attempts, j.Partition, j.UpdatedAt.UTC().Format(time.RFC3339), j.LastError)
	}
	tw.Flush()
	return exitOK
}

func repairJobs(ctx context.Context, env *environment, sub, kind string, q httpapi.Jobs, args []string, all bool) int {
	if all == (len(args) == 1) || len(args) > 1 {
		fmt.Fprintf(env.stderr, "blacksky jobs %s: give one ID or --all-dead (example: blacksky jobs %s %s 42)\n", sub, sub, kind)
		return exitUsage
	}
	if all {
		op := q.RetryDead
		if sub == "purge" {
			op = q.PurgeDead
		}
		n, err := op(ctx)
		if err != nil {
			return jobsFailure(env, err)
		}
		fmt.Fprintf(env.stdout, "%s %d dead %s item(s)\n", pastTense(sub), n, kind)
		return exitOK
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(env.stderr, "blacksky jobs %s: %q is not an ID (a positive number from blacksky jobs list %s)\n", sub, args[0], kind)
		return exitUsage
	}
	op := q.RetryOne
	if sub == "purge" {
		op = q.PurgeOne
	}
	switch err := op(ctx, id); {
	case errors.Is(err, jobs.ErrNotFound), errors.Is(err, outgoing.ErrNotFound), errors.Is(err, outgoing.ErrWrongState):
		fmt.Fprintf(env.stderr, "blacksky jobs %s: no %s item %d in a state that allows it (retry: dead; purge: dead or done)\n", sub, kind, id)
		return exitUsage
	case err != nil:
		return jobsFailure(env, err)
	}
	fmt.Fprintf(env.stdout, "%s %s item %d\n", pastTense(sub), kind, id)
	return exitOK
}

func jobsFailure(env *environment, err error) int {
	fmt.Fprintf(env.stderr, "blacksky jobs: %v\n", err)
	return exitFailure
}

func pastTense(sub string) string {
	if sub == "retry" {
		return "retried"
	}
	return "purged"
}
