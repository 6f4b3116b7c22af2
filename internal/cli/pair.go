package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/phone"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

func pairCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	phoneFlag := fs.String("phone", "", "link with a pairing code for this phone number instead of a QR code")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up when not paired within this time")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	cfg, ok := loadConfig(env, "pair")
	if !ok {
		return exitUsage
	}
	if *phoneFlag != "" {
		n, err := phone.Normalize(*phoneFlag)
		if err != nil {
			fmt.Fprintf(env.stderr, "blacksky pair: --phone %q %v (example: --phone 4915123456789)\n", *phoneFlag, err)
			return exitUsage
		}
		cfg.PairPhone = n
	}
	log := newLogger(env, cfg)
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky pair: %v%s\n", err, helpFor(err))
		return openFailure(err)
	}
	defer st.Close()
	// Pairing connects to WhatsApp: never beside a running bot on this account.
	l, err := lease.TryAcquire(ctx, st, cfg.SessionID, lease.HolderID()+" (pair)", lease.Options{})
	if errors.Is(err, lease.ErrHeld) {
		h, _, _ := lease.CurrentHolder(ctx, st, cfg.SessionID)
		fmt.Fprintf(env.stderr, "blacksky pair: session %q is driven by another process (%s); pair through its /pair page, or stop it first\n", cfg.SessionID, h.ID)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky pair: %v\n", err)
		return exitFailure
	}
	defer l.Release()
	// The same parts and client setup as 'blacksky run': a message that
	// arrives while pairing is stored before it is acknowledged, and the
	// bot handles it when it runs.
	p, err := assemble(ctx, env.program, cfg, st, log, time.Now())
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky pair: %v\n", err)
		return exitFailure
	}
	opts := p.Supervisor
	opts.LeaseToken = l.Token()
	sup, err := supervisor.New(ctx, opts)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky pair: %v\n", err)
		return exitFailure
	}
	p.conn.set(lone{sup})
	if p := sup.Pairing(); p.Paired {
		fmt.Fprintf(env.stdout, "session %q is already paired as %s; nothing to do\n", cfg.SessionID, p.Account)
		return exitOK
	}
	return waitForPairing(ctx, env, sup, *timeout)
}

// waitForPairing runs the connection until the device is paired and logged
// in, showing QR codes and pairing codes as they come.
func waitForPairing(ctx context.Context, env *environment, sup *supervisor.Supervisor, timeout time.Duration) int {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sup.Run(runCtx) }()
	// Someone is at the terminal to scan: every new code, at once.
	go newQRPrinter(env.stdout, 0).run(runCtx, sup)
	go showPairCodes(runCtx, sup, env)

	err := sup.WaitFor(runCtx, func(st supervisor.Status, p supervisor.Pairing) bool {
		return p.Paired && st.State == supervisor.Connected
	})
	account := sup.Pairing().Account
	cancel()
	<-done
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky pair: not paired within %s\n", timeout)
		return exitFailure
	}
	fmt.Fprintf(env.stdout, "paired as %s; start the bot with 'blacksky run'\n", account)
	return exitOK
}

func showPairCodes(ctx context.Context, sup *supervisor.Supervisor, env *environment) {
	last := ""
	for {
		err := sup.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool {
			return p.Code != "" && p.Code != last
		})
		if err != nil {
			return
		}
		last = sup.Pairing().Code
		fmt.Fprintf(env.stdout, "On the phone: WhatsApp > Linked devices > Link with phone number, enter: %s\n", last)
	}
}
