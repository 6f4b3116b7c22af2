package sandbox

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/devsandbox"
)

// DefaultPhoneNumber is the bot account's number when Options.PhoneNumber is empty.
const DefaultPhoneNumber = "15550000001"

// DefaultCloseDelay is how long the server waits after a failure or stream
// error before closing, so whatsmeow handles the node before the close.
const DefaultCloseDelay = 20 * time.Millisecond

// Options configures a sandbox Server.
type Options struct {
	// Listen is the TCP address for both the simulator and the control API (default 127.0.0.1:0).
	Listen string
	// DataDir, if set, makes linked devices, keys and contacts survive restarts.
	DataDir string
	// Logger receives the sandbox's logs (default: discard).
	Logger *slog.Logger
	// PhoneNumber is the bot account's number (default DefaultPhoneNumber).
	PhoneNumber string
	// ImmediateClose closes right after failures and stream errors instead of waiting CloseDelay.
	ImmediateClose bool
	// CloseDelay overrides DefaultCloseDelay.
	CloseDelay time.Duration
	// PhoneNumberContacts keeps the addressing of WhatsApp before its move to
	// LIDs: new contacts have no LID, write from their phone number and are
	// found only by it, until MigrateContact moves one to its LID. Off (the
	// default, as WhatsApp is now): every contact has a LID, writes from it
	// (from=LID@lid, sender_pn=number) and is answered with it in device and
	// LID queries.
	PhoneNumberContacts bool
	// NoiseRootKey optionally fixes the 32-byte Curve25519 private key of the noise root
	// (useful because whatsmeow.WACertPubKey is process-global).
	NoiseRootKey []byte
	// TrustFile, if set, is where Start writes what a bot must trust
	// (devsandbox.WriteFile): the file a bot's WA_SANDBOX_TRUST names.
	TrustFile string
	// Latency is the network's round trip between a client and WhatsApp:
	// every frame a connection sends after the noise handshake is handled
	// Latency after it arrived, so an ack or an answer comes a round trip
	// after its request, and frames still pipeline and keep their order,
	// as on a real network. The whole round trip is taken on the way in:
	// what the server pushes unasked (a contact's message, a receipt)
	// leaves at once, where on a real network it would take half of it.
	// Zero (the default): answered at once, as over loopback.
	Latency time.Duration
	// ReadAfter is how long after delivery a new contact reads the bot's
	// messages by itself, sending its read receipt (ContactSettings.ReadAfter
	// changes it per contact). Zero (the default): contacts read only when
	// told (Contact.Read, POST /control/contacts/{number}/read).
	ReadAfter time.Duration
}

// ConnInfo describes one open client connection.
type ConnInfo struct {
	ID         uint64    `json:"id"`
	JID        string    `json:"jid,omitempty"`
	Pairing    bool      `json:"pairing"`
	StartedAt  time.Time `json:"started_at"`
	RemoteAddr string    `json:"remote_addr"`
}

// Server is a running WhatsApp simulator with its control API.
type Server struct {
	opts Options
	log  *slog.Logger

	keys   *serverKeys
	signal *signalStore
	tmpDir string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	ln      net.Listener
	tlsLn   *chanListener
	ctlLn   *chanListener
	wsSrv   *http.Server
	ctlSrv  *http.Server
	tlsConf *tls.Config

	mu         sync.Mutex
	changed    chan struct{}
	events     []Event
	eventSeq   uint64
	conns      map[uint64]*conn
	nextConnID uint64
	acct       *account
	// phone is the account's primary device: its Signal identity signs linked
	// devices and it decrypts the copies the bot sends to its own account.
	phone *Contact
	// settings are the account's privacy settings, blocklist and app state (login.go).
	settings *accountExtras
	contacts map[string]*Contact
	lidUsers map[string]*Contact // contacts by LID user
	refs     map[string]*conn
	codeRegs []*codeReg
	pending  map[uint16][]pendingMsg
	faults   map[FaultKind]activeFault
	versions ClientVersions // accepted and served client versions (version.go)
	started  bool
	closed   bool

	// undecryptableNext is armed by FaultUndecryptable and spent by the next contact message.
	undecryptableNext bool
}

// New prepares a server: keys, stores and persisted state are loaded or created, nothing listens yet.
func New(opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.PhoneNumber == "" {
		opts.PhoneNumber = DefaultPhoneNumber
	}
	if opts.CloseDelay <= 0 {
		opts.CloseDelay = DefaultCloseDelay
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		opts:     opts,
		log:      log.With("component", "wa-sandbox"),
		changed:  make(chan struct{}),
		conns:    make(map[uint64]*conn),
		contacts: make(map[string]*Contact),
		lidUsers: make(map[string]*Contact),
		refs:     make(map[string]*conn),
		pending:  make(map[uint16][]pendingMsg),
		faults:   make(map[FaultKind]activeFault),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	dir := opts.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "wa-sandbox-*")
		if err != nil {
			return nil, fmt.Errorf("create sandbox temp dir: %w", err)
		}
		s.tmpDir, dir = tmp, tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox data dir: %w", err)
	}
	if err := s.load(dir); err != nil {
		s.cleanupFiles()
		return nil, err
	}
	s.settings = s.loadExtras()
	return s, nil
}

// Start listens on Options.Listen and serves until Close or ctx is done.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("sandbox start: already started or closed")
	}
	s.started = true
	s.mu.Unlock()
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("sandbox listen: %w", err)
	}
	s.ln = ln
	s.tlsLn = newChanListener(ln.Addr())
	s.ctlLn = newChanListener(ln.Addr())
	s.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{s.keys.tlsCert},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	s.wsSrv = &http.Server{
		Handler:           s.webHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		// A non-nil empty map keeps HTTP/2 off: whatsmeow's websocket needs HTTP/1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.ctlSrv = &http.Server{
		Handler:           s.ControlHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.opts.TrustFile != "" {
		if err := devsandbox.WriteFile(s.opts.TrustFile, s.Trust()); err != nil {
			ln.Close()
			return fmt.Errorf("sandbox start: %w", err)
		}
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); _ = s.wsSrv.Serve(tls.NewListener(s.tlsLn, s.tlsConf)) }()
	go func() { defer s.wg.Done(); _ = s.ctlSrv.Serve(s.ctlLn) }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.ctx.Done():
		}
	}()
	s.log.Info("sandbox listening", "addr", ln.Addr().String(), "phone", s.opts.PhoneNumber)
	return nil
}

// Close stops listening, drops every connection and releases the stores.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.connList()
	s.mu.Unlock()
	s.cancel()
	if s.ln != nil {
		_ = s.ln.Close()
		_ = s.tlsLn.Close()
		_ = s.ctlLn.Close()
	}
	for _, c := range conns {
		c.close("server closing")
	}
	if s.wsSrv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.wsSrv.Shutdown(shutCtx)
		_ = s.ctlSrv.Shutdown(shutCtx)
		cancel()
	}
	s.wg.Wait()
	var err error
	if s.signal != nil {
		err = s.signal.close()
	}
	s.cleanupFiles()
	s.notify()
	return err
}

func (s *Server) cleanupFiles() {
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// ControlURL is the base URL of the control API (and the value for WA_SANDBOX).
func (s *Server) ControlURL() string {
	return "http://" + s.Addr()
}

// PhoneNumber is the bot account's phone number.
func (s *Server) PhoneNumber() string { return s.opts.PhoneNumber }

// AccountJID is the bot account's phone-number JID (without device).
func (s *Server) AccountJID() types.JID {
	return types.NewJID(s.opts.PhoneNumber, types.DefaultUserServer)
}

// AccountLID is the bot account's LID (no device).
func (s *Server) AccountLID() types.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return types.NewJID(s.acct.LIDUser, types.HiddenUserServer)
}

// Trust returns what a client must trust to connect to this server.
func (s *Server) Trust() Trust {
	return Trust{
		CACertPEM:    string(s.keys.caCertPEM),
		NoiseRootPub: b64(s.keys.noiseRoot.Pub[:]),
		Addr:         s.Addr(),
	}
}

// Connections lists the open client connections.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// connList returns the connections in id order; s.mu must be held.
func (s *Server) connList() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Server) closeDelay(immediate bool) time.Duration {
	if immediate || s.opts.ImmediateClose {
		return 0
	}
	return s.opts.CloseDelay
}

func (s *Server) acceptLoop() {
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("accept failed", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.route(raw)
		}()
	}
}

// route sniffs the first byte: a TLS handshake goes to the simulator,
// anything else is plain HTTP for the control API.
func (s *Server) route(raw net.Conn) {
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(raw)
	first, err := br.Peek(1)
	if err != nil {
		_ = raw.Close()
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: raw, r: br}
	if first[0] == 0x16 {
		if s.faultActive(FaultDown) {
			s.emit(Event{Kind: EventRefused, Detail: "down"})
			_ = raw.Close()
			return
		}
		s.tlsLn.push(pc)
		return
	}
	s.ctlLn.push(pc)
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener hands connections routed by the sniffer to an http.Server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
