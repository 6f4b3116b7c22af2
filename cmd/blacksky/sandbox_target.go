package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

// target points whatsmeow, and the supervisor's reachability probes, at a sandbox.
type target struct {
	configure func(*whatsmeow.Client) error
	client    *http.Client
}

// sandboxTarget fetches a running sandbox's trust settings and returns the
// client setup that points whatsmeow at it instead of WhatsApp.
func sandboxTarget(ctx context.Context, controlURL string, log *slog.Logger) (target, error) {
	trust, err := sandbox.FetchTrust(ctx, controlURL)
	if err != nil {
		return target{}, fmt.Errorf("WA_SANDBOX=%s: %w (is 'blacksky sandbox' running there?)", controlURL, err)
	}
	// The simulator and its control API share one address, so dial the
	// address the operator gave: it is reachable from here, whatever the
	// sandbox thinks its own address is.
	if u, err := url.Parse(controlURL); err == nil && u.Host != "" {
		trust.Addr = u.Host
	}
	client, err := trust.HTTPClient()
	if err != nil {
		return target{}, fmt.Errorf("WA_SANDBOX=%s: %w", controlURL, err)
	}
	log.Warn("WA_SANDBOX is set: NOT talking to WhatsApp; connecting to the local sandbox", "sandbox", controlURL)
	return target{configure: trust.Apply, client: client}, nil
}
