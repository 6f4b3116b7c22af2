// Package devsandbox is the product's side of a development sandbox (the
// simulator of cmd/blacksky-sandbox, never linked into the product): what a
// bot must trust to talk to it instead of WhatsApp, read from the file the
// sandbox writes, and the whatsmeow setup that points a client at it.
//
// The contract: a bot reaches a sandbox only when its operator names both
// the sandbox's address (WA_SANDBOX) and its trust file (WA_SANDBOX_TRUST),
// never from a network fetch anyone could answer. Trusting a sandbox sets
// whatsmeow's process-global noise root (whatsmeow.WACertPubKey): the whole
// process then trusts the sandbox, and no WhatsApp server.
package devsandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// WriteFile writes t to path for bots to read (ReadFile), replacing the
// file at once: a bot reading it meanwhile sees the old trust or the new.
func WriteFile(path string, t Trust) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".trust-*")
	if err != nil {
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write sandbox trust: %w", err)
	}
	return nil
}

// ReadFile reads the trust a sandbox wrote to path.
func ReadFile(path string) (Trust, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Trust{}, fmt.Errorf("read sandbox trust: %w", err)
	}
	var t Trust
	if err := json.Unmarshal(data, &t); err != nil {
		return Trust{}, fmt.Errorf("read sandbox trust %s: %w", path, err)
	}
	if _, err := t.NoiseRootKey(); err != nil {
		return Trust{}, fmt.Errorf("read sandbox trust %s: %w", path, err)
	}
	if t.CACertPEM == "" {
		return Trust{}, fmt.Errorf("read sandbox trust %s: no CA certificate", path)
	}
	return t, nil
}
