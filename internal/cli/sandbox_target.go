package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/devsandbox"
)

// target points whatsmeow, and the supervisor's reachability probes, at a sandbox.
type target struct {
	configure func(*whatsmeow.Client) error
	client    *http.Client
}

// sandboxTarget reads what to trust of the sandbox at url from the file it
// wrote (trustFile) and returns the client setup that points whatsmeow at
// it instead of WhatsApp. The file is read again when the sandbox's
// certificate changes (devsandbox.Remote), so a bot outlives a sandbox
// restarted without --data.
func sandboxTarget(url, trustFile string, log *slog.Logger) (target, error) {
	remote, err := devsandbox.DialRemote(url, trustFile, log)
	if err != nil {
		return target{}, fmt.Errorf("WA_SANDBOX=%s: %w (is blacksky-sandbox running there, and WA_SANDBOX_TRUST the file it printed?)", url, err)
	}
	log.Warn("WA_SANDBOX is set: NOT talking to WhatsApp; connecting to the local sandbox (development only)", "sandbox", url, "trust", trustFile)
	return target{configure: remote.Apply, client: remote.HTTPClient()}, nil
}

// movedCommand answers the commands that moved to blacksky-sandbox: the
// product binary no longer carries the simulator.
func movedCommand(name string) func(_ context.Context, env *environment, _ []string) int {
	return func(_ context.Context, env *environment, _ []string) int {
		how := "blacksky-sandbox [flags]"
		if name == "demo" {
			how = "blacksky-sandbox demo"
		}
		fmt.Fprintf(env.stderr, "blacksky %s: moved to its own program, so the bot never carries the simulator: go run ./cmd/blacksky-sandbox%s\n",
			name, how[len("blacksky-sandbox"):])
		return exitUsage
	}
}
