package devsandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
)

// Remote is a sandbox reached over the network (a bot's WA_SANDBOX): what a
// client must trust is read from the file the sandbox wrote
// (WA_SANDBOX_TRUST), and read again when the sandbox's TLS certificate
// stops verifying. A sandbox restarted without
// --data makes a new CA and a new noise root; a bot that kept the old ones
// failed every connection with "x509: certificate signed by unknown
// authority" until it was restarted itself (issue 15). With the new trust the
// bot reaches the new sandbox, which does not know its device and answers
// its login with failure 401, as WhatsApp does: the bot sees a logout.
//
// Only an unknown-authority error leads to a new read, so a certificate for
// the wrong name or an expired one still fails, and a read that brings the
// same CA leaves the error as it was.
type Remote struct {
	trustPath string
	addr      string
	log       *slog.Logger
	// setNoiseRoot makes the process trust a noise root; whatsmeow keeps
	// one, process-global (Trust.Apply).
	setNoiseRoot func([32]byte)
	client       *http.Client

	mu    sync.Mutex
	trust Trust
	pool  *x509.CertPool
}

// DialRemote reads the trust of the sandbox at sandboxURL (its control
// API's URL, as blacksky-sandbox prints it) from trustPath. Every
// connection dials the URL's address, whatever the sandbox thinks its own
// address is: the operator gave that one, so it is reachable from here.
func DialRemote(sandboxURL, trustPath string, log *slog.Logger) (*Remote, error) {
	return dialRemote(sandboxURL, trustPath, log, setWhatsmeowNoiseRoot)
}

func dialRemote(sandboxURL, trustPath string, log *slog.Logger, setNoiseRoot func([32]byte)) (*Remote, error) {
	u, err := url.Parse(sandboxURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("sandbox URL %q: not an http:// URL with a host", sandboxURL)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Remote{trustPath: trustPath, addr: u.Host, log: log, setNoiseRoot: setNoiseRoot}
	t, err := ReadFile(trustPath)
	if err != nil {
		return nil, err
	}
	if err := r.use(t); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	r.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, r.addr)
		},
		TLSClientConfig: &tls.Config{
			// Verification is not skipped: verifyConnection does it, against
			// the CA trusted now, which a refetch may replace.
			InsecureSkipVerify: true,
			VerifyConnection:   r.verifyConnection,
			NextProtos:         []string{"http/1.1"},
			MinVersion:         tls.VersionTLS12,
		},
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	return r, nil
}

// HTTPClient is the client for everything that goes to the sandbox
// (websocket, pre-login requests, probes); it follows the trust as it is
// read again.
func (r *Remote) HTTPClient() *http.Client { return r.client }

// Trust is what the process trusts of the sandbox now.
func (r *Remote) Trust() Trust {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trust
}

// Apply points cli at the sandbox, as Trust.Apply does, with the client that
// follows the trust.
func (r *Remote) Apply(cli *whatsmeow.Client) error {
	t := r.Trust()
	root, err := t.NoiseRootKey()
	if err != nil {
		return err
	}
	r.setNoiseRoot(root)
	cli.SetWebsocketHTTPClient(r.client)
	cli.SetPreLoginHTTPClient(r.client)
	return nil
}

// use makes t the trusted sandbox, its noise root included.
func (r *Remote) use(t Trust) error {
	t.Addr = r.addr
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(t.CACertPEM)) {
		return errors.New("sandbox trust: no certificate in CA PEM")
	}
	root, err := t.NoiseRootKey()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.trust, r.pool = t, pool
	r.mu.Unlock()
	r.setNoiseRoot(root)
	return nil
}

// verifyConnection verifies the server's chain as crypto/tls would, against
// the CA trusted now; a chain from an unknown CA makes it read the trust
// file again and, if the CA changed, verify once more.
func (r *Remote) verifyConnection(cs tls.ConnectionState) error {
	r.mu.Lock()
	pool := r.pool
	r.mu.Unlock()
	err := verifyChain(cs, pool)
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		return err
	}
	t, ferr := ReadFile(r.trustPath)
	if ferr != nil {
		return fmt.Errorf("%w (reading the sandbox's trust again: %v)", err, ferr)
	}
	if t.CACertPEM == r.Trust().CACertPEM {
		return err
	}
	if uerr := r.use(t); uerr != nil {
		return fmt.Errorf("%w (the sandbox's new trust: %v)", err, uerr)
	}
	r.log.Warn("the sandbox has a new CA (it was restarted without --data); trusting it now; it does not know this device, so expect a logout and pairing again", "trust", r.trustPath)
	r.mu.Lock()
	pool = r.pool
	r.mu.Unlock()
	return verifyChain(cs, pool)
}

// verifyChain is crypto/tls's own verification of a server (see the
// VerifyConnection example in its documentation).
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the sandbox sent no certificate")
	}
	opts := x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

// setWhatsmeowNoiseRoot writes whatsmeow's process-global noise root, only
// when it differs so that clients reading it concurrently do not race.
func setWhatsmeowNoiseRoot(root [32]byte) {
	if whatsmeow.WACertPubKey != root {
		whatsmeow.WACertPubKey = root
	}
}
