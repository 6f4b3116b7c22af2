package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/phone"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

// serveCommand runs the sandbox until a signal ends it.
func serveCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("blacksky-sandbox", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7878", "address for the simulator and its control API")
	dataDir := fs.String("data", "", "directory that keeps linked devices and contacts across restarts (default: in memory)")
	phoneFlag := fs.String("phone", sandbox.DefaultPhoneNumber, "phone number of the simulated bot account")
	contacts := fs.String("contacts", "", "comma-separated numbers of contacts to create at start")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	trustFile := fs.String("trust-file", "", "where to write what a bot must trust to connect (its WA_SANDBOX_TRUST); default: trust.json in --data, else in the system's temporary directory")
	pnContacts := fs.Bool("phone-number-contacts", false, "contacts start without a LID, addressed by phone number as before WhatsApp moved to LIDs (POST /control/contacts/{number}/migrate moves one)")
	latency := fs.Duration("latency", 0, "round trip to the simulated server: every request is answered this long after it was sent (WhatsApp's acks take about 200ms); 0 answers at once")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if *latency < 0 || *latency > time.Minute {
		fmt.Fprintf(env.stderr, "blacksky-sandbox: --latency %s: must be between 0 and 1m\n", *latency)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(env.stderr, "blacksky-sandbox: --log-level %q: must be debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	number, err := phone.Normalize(*phoneFlag)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky-sandbox: --phone %q %v\n", *phoneFlag, err)
		return exitUsage
	}
	if *trustFile == "" {
		*trustFile = defaultTrustFile(*dataDir)
	}
	log := logging.New(env.stderr, "text", level).With("component", "sandbox")
	srv, err := sandbox.New(sandbox.Options{Listen: *listen, DataDir: *dataDir, Logger: log, PhoneNumber: number,
		PhoneNumberContacts: *pnContacts, TrustFile: *trustFile, Latency: *latency})
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky-sandbox: %v\n", err)
		return exitFailure
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(env.stderr, "blacksky-sandbox: %v\n", err)
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
			fmt.Fprintf(env.stderr, "blacksky-sandbox: --contacts %q: %v\n", c, err)
			return exitUsage
		}
	}
	fmt.Fprintf(env.stdout, "WhatsApp sandbox listening on %s (control API: %s/control/...)\n", srv.Addr(), srv.ControlURL())
	fmt.Fprintf(env.stdout, "Connect a bot to it with: WA_SANDBOX=%s WA_SANDBOX_TRUST=%s blacksky run\n", srv.ControlURL(), *trustFile)
	<-ctx.Done()
	fmt.Fprintln(env.stdout, "sandbox stopped")
	return exitOK
}

// defaultTrustFile is where the trust goes without --trust-file: beside the
// sandbox's data, or in the temporary directory for a sandbox in memory.
func defaultTrustFile(dataDir string) string {
	if dataDir != "" {
		return filepath.Join(dataDir, "trust.json")
	}
	return filepath.Join(os.TempDir(), "blacksky-sandbox-trust.json")
}
