package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

// target points whatsmeow, and the supervisor's reachability probes, at a sandbox.
type target struct {
	configure func(*whatsmeow.Client) error
	client    *http.Client
}

// sandboxTarget fetches a running sandbox's trust settings and returns the
// client setup that points whatsmeow at it instead of WhatsApp. The trust is
// fetched again when the sandbox's certificate changes (sandbox.Remote), so
// a bot outlives a sandbox restarted without --data.
func sandboxTarget(ctx context.Context, controlURL string, log *slog.Logger) (target, error) {
	remote, err := sandbox.DialRemote(ctx, controlURL, log)
	if err != nil {
		return target{}, fmt.Errorf("WA_SANDBOX=%s: %w (is 'blacksky sandbox' running there?)", controlURL, err)
	}
	log.Warn("WA_SANDBOX is set: NOT talking to WhatsApp; connecting to the local sandbox", "sandbox", controlURL)
	return target{configure: remote.Apply, client: remote.HTTPClient()}, nil
}
