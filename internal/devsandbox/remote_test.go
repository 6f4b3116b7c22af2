package devsandbox_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/devsandbox"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

func startSandbox(t *testing.T, listen, trustFile string) *sandbox.Server {
	t.Helper()
	srv, err := sandbox.New(sandbox.Options{Listen: listen, TrustFile: trustFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// A sandbox restarted without --data on the same address has a new CA and
// writes it to its trust file: the Remote's client reads the file again and
// reaches it (issue 15), without any fetch over the network.
func TestRemoteFollowsARestartedSandbox(t *testing.T) {
	trustFile := filepath.Join(t.TempDir(), "trust.json")
	first := startSandbox(t, "127.0.0.1:0", trustFile)
	var mu sync.Mutex
	var roots [][32]byte
	r, err := devsandbox.DialRemoteWith(first.ControlURL(), trustFile, nil, func(k [32]byte) {
		mu.Lock()
		roots = append(roots, k)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://web.whatsapp.com/ws/chat", nil)
		resp, err := r.HTTPClient().Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("a request to the first sandbox: %v", err)
	}
	addr := first.Addr()
	first.Close()
	second := startSandbox(t, addr, trustFile)
	if second.Trust().CACertPEM == first.Trust().CACertPEM {
		t.Fatal("the restarted sandbox kept its CA; the test shows nothing")
	}
	r.HTTPClient().CloseIdleConnections()
	if err := get(); err != nil {
		t.Fatalf("a request to the restarted sandbox: %v", err)
	}
	if got := r.Trust().CACertPEM; got != second.Trust().CACertPEM {
		t.Error("the Remote does not trust the restarted sandbox's CA")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(roots) != 2 {
		t.Errorf("the noise root was set %d times; want at the first read and at the second", len(roots))
	}
}

// A trust file that is missing, or not a sandbox's, is refused with the reason.
func TestReadFileRefusesWhatIsNotATrustFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := devsandbox.ReadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file was read")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := devsandbox.WriteFile(bad, devsandbox.Trust{NoiseRootPub: "not base64"}); err != nil {
		t.Fatal(err)
	}
	if _, err := devsandbox.ReadFile(bad); err == nil {
		t.Error("a file without a valid noise root was read")
	}
}
