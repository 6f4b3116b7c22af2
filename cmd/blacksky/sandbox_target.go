package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

// sandboxTarget fetches a running sandbox's trust settings and returns the
// client setup that points whatsmeow at it instead of WhatsApp.
func sandboxTarget(ctx context.Context, controlURL string, log *slog.Logger) (func(*whatsmeow.Client) error, error) {
	trust, err := sandbox.FetchTrust(ctx, controlURL)
	if err != nil {
		return nil, fmt.Errorf("WA_SANDBOX=%s: %w (is 'blacksky sandbox' running there?)", controlURL, err)
	}
	// The simulator and its control API share one address, so dial the
	// address the operator gave: it is reachable from here, whatever the
	// sandbox thinks its own address is.
	if u, err := url.Parse(controlURL); err == nil && u.Host != "" {
		trust.Addr = u.Host
	}
	log.Warn("WA_SANDBOX is set: NOT talking to WhatsApp; connecting to the local sandbox", "sandbox", controlURL)
	return trust.Apply, nil
}
