package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/phone"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

func sandboxCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7878", "address for the simulator and its control API")
	dataDir := fs.String("data", "", "directory that keeps linked devices and contacts across restarts (default: in memory)")
	phoneFlag := fs.String("phone", sandbox.DefaultPhoneNumber, "phone number of the simulated bot account")
	contacts := fs.String("contacts", "", "comma-separated numbers of contacts to create at start")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pnContacts := fs.Bool("phone-number-contacts", false, "contacts start without a LID, addressed by phone number as before WhatsApp moved to LIDs (POST /control/contacts/{number}/migrate moves one)")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(env.stderr, "blacksky sandbox: --log-level %q: must be debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	number, err := phone.Normalize(*phoneFlag)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky sandbox: --phone %q %v\n", *phoneFlag, err)
		return exitUsage
	}
	log := logging.New(env.stderr, "text", level).With("component", "sandbox")
	srv, err := sandbox.New(sandbox.Options{Listen: *listen, DataDir: *dataDir, Logger: log, PhoneNumber: number, PhoneNumberContacts: *pnContacts})
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky sandbox: %v\n", err)
		return exitFailure
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(env.stderr, "blacksky sandbox: %v\n", err)
		return exitFailure
	}
	defer srv.Close()
	for _, c := range strings.Split(*contacts, ",") {
		if strings.TrimSpace(c) == "" {
			continue
		}
		n, err := phone.Normalize(c)
		if err == nil {
			_, err = srv.AddContact(n)
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "blacksky sandbox: --contacts %q: %v\n", c, err)
			return exitUsage
		}
	}
	fmt.Fprintf(env.stdout, "WhatsApp sandbox listening on %s (control API: %s/control/...)\n", srv.Addr(), srv.ControlURL())
	fmt.Fprintf(env.stdout, "Connect a bot to it with: WA_SANDBOX=%s blacksky run\n", srv.ControlURL())
	<-ctx.Done()
	fmt.Fprintln(env.stdout, "sandbox stopped")
	return exitOK
}
