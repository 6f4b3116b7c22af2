package main

import (
	"context"
	"errors"
	"log/slog"

	"go.mau.fi/whatsmeow"
)

// sandboxTarget fetches the sandbox's trust settings. Placeholder until the
// sandbox package lands.
func sandboxTarget(ctx context.Context, url string, log *slog.Logger) (func(*whatsmeow.Client) error, error) {
	return nil, errors.New("WA_SANDBOX is not supported yet")
}
