package sandbox

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A sandbox restarted without --data on the same address has a new CA: the
// Remote's client fetches the trust again and reaches it (issue 15).
func TestRemoteFollowsARestartedSandbox(t *testing.T) {
	first := startServer(t, Options{})
	var mu sync.Mutex
	var roots [][32]byte
	r, err := dialRemote(testCtx(t, 10*time.Second), first.ControlURL(), nil, func(k [32]byte) {
		mu.Lock()
		roots = append(roots, k)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func() error {
		req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), http.MethodGet, "https://web.whatsapp.com/ws/chat", nil)
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
	second := startServer(t, Options{Listen: addr})
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
		t.Errorf("the noise root was set %d times; want at the first fetch and at the refetch", len(roots))
	}
}
