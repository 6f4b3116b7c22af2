package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/blacksky-bot/blacksky/internal/devsandbox"
)

// Trust is what a whatsmeow client needs to talk to a sandbox instead of
// WhatsApp; the product's side of it is package devsandbox.
type Trust = devsandbox.Trust

// FetchTrust reads the trust material from a sandbox control URL such as
// http://127.0.0.1:8443, for harnesses and tests on this machine. A bot
// never does this: it reads the file the sandbox wrote (Options.TrustFile),
// which its operator named.
func FetchTrust(ctx context.Context, controlURL string) (Trust, error) {
	url := strings.TrimRight(controlURL, "/") + "/control/trust"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Trust{}, fmt.Errorf("fetch sandbox trust: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Trust{}, fmt.Errorf("fetch sandbox trust: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Trust{}, fmt.Errorf("fetch sandbox trust: status %s", resp.Status)
	}
	var t Trust
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return Trust{}, fmt.Errorf("fetch sandbox trust: decode: %w", err)
	}
	if _, err := t.NoiseRootKey(); err != nil {
		return Trust{}, fmt.Errorf("fetch sandbox trust: %w", err)
	}
	return t, nil
}
