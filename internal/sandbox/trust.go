package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
)

// Trust is what a whatsmeow client needs to talk to a sandbox instead of WhatsApp.
type Trust struct {
	// CACertPEM is the certificate authority that signed the sandbox's TLS certificate.
	CACertPEM string `json:"ca_cert_pem"`
	// NoiseRootPub is the base64 Curve25519 key that roots the noise certificate chain.
	NoiseRootPub string `json:"noise_root_pub"`
	// Addr is the host:port every WhatsApp connection must be dialed to.
	Addr string `json:"addr"`
}

// HTTPClient returns a client that dials Addr whatever host is asked and trusts only the sandbox CA.
func (t Trust) HTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(t.CACertPEM)) {
		return nil, errors.New("sandbox trust: no certificate in CA PEM")
	}
	if t.Addr == "" {
		return nil, errors.New("sandbox trust: empty address")
	}
	addr := t.Addr
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{
			RootCAs:    pool,
			NextProtos: []string{"http/1.1"},
			MinVersion: tls.VersionTLS12,
		},
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// NoiseRootKey decodes NoiseRootPub.
func (t Trust) NoiseRootKey() ([32]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(t.NoiseRootPub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("decode noise root key: %w", err)
	}
	if len(raw) != 32 {
		return [32]byte{}, fmt.Errorf("decode noise root key: got %d bytes, want 32", len(raw))
	}
	return [32]byte(raw), nil
}

// Apply points cli at the sandbox and makes the process trust its noise root.
//
// whatsmeow.WACertPubKey is process-global: every client in the process then
// trusts this sandbox, and no other WhatsApp server.
func (t Trust) Apply(cli *whatsmeow.Client) error {
	root, err := t.NoiseRootKey()
	if err != nil {
		return err
	}
	hc, err := t.HTTPClient()
	if err != nil {
		return err
	}
	// Only write when it differs so that clients already reading it concurrently do not race.
	if whatsmeow.WACertPubKey != root {
		whatsmeow.WACertPubKey = root
	}
	cli.SetWebsocketHTTPClient(hc)
	cli.SetPreLoginHTTPClient(hc)
	return nil
}

// FetchTrust reads the trust material from a sandbox control URL such as http://127.0.0.1:8443.
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
