package sandbox

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
)

const handshakeTimeout = 20 * time.Second

// conn is one client websocket after the noise handshake.
type conn struct {
	s       *Server
	id      uint64
	ws      *websocket.Conn
	remote  string
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	reader frameReader
	queued [][]byte

	readKey  cipher.AEAD
	readCtr  uint32
	writeMu  sync.Mutex
	writeKey cipher.AEAD
	writeCtr uint32

	mu        sync.Mutex
	jid       types.JID
	loggedIn  bool
	pair      *pairInfo
	waiters   map[string]chan *waBinary.Node
	heldAcks  []waBinary.Node
	broken    FaultKind // FaultStuckSends or FaultDeaf once injected on this connection
	closeOnce sync.Once
	nextReqID uint64
}

func (s *Server) handleWebsocket(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/ws/chat" {
		http.NotFound(w, r)
		return
	}
	if s.faultActive(FaultRefuse) || s.faultActive(FaultDown) {
		s.emit(Event{Kind: EventRefused, Detail: "upgrade refused with 503"})
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("websocket accept failed", "err", err)
		return
	}
	ws.SetReadLimit(maxFrameSize + 1024)
	c := &conn{s: s, ws: ws, remote: r.RemoteAddr, started: time.Now(), waiters: make(map[string]chan *waBinary.Node)}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.nextConnID++
	c.id = s.nextConnID
	s.conns[c.id] = c
	// Close waits for connection handlers so the stores are not closed under them.
	s.wg.Add(1)
	defer s.wg.Done()
	s.emitLocked(Event{Kind: EventConnOpened, ConnID: c.id, Detail: c.remote})
	s.mu.Unlock()
	err = c.run()
	detail := "closed"
	if err != nil {
		detail = err.Error()
	}
	// Record the close as soon as the read loop ends, before the socket teardown
	// (which can wait), so a client's next connection is not seen overlapping it.
	s.forgetConn(c, detail)
	c.close("connection ended")
}

// forgetConn unregisters a connection and records its end, once.
func (s *Server) forgetConn(c *conn, detail string) {
	jid := c.jidString()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.id] != c {
		return
	}
	s.emitLocked(Event{Kind: EventConnClosed, ConnID: c.id, JID: jid, Detail: detail})
	delete(s.conns, c.id)
	for ref, rc := range s.refs {
		if rc == c {
			delete(s.refs, ref)
		}
	}
	kept := s.codeRegs[:0]
	for _, reg := range s.codeRegs {
		if reg.c != c {
			kept = append(kept, reg)
		}
	}
	s.codeRegs = kept
}

func (c *conn) info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := ConnInfo{ID: c.id, StartedAt: c.started, RemoteAddr: c.remote, Pairing: c.pair != nil}
	if c.loggedIn {
		ci.JID = c.jid.String()
	}
	return ci
}

func (c *conn) jidString() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jid.IsEmpty() {
		return ""
	}
	return c.jid.String()
}

func (c *conn) account() (types.JID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jid, c.loggedIn
}

// close drops the websocket at once. The end is recorded first: a client
// that sees the close may redial before the read loop has noticed it, and
// its next connection must not look like a second one at once.
func (c *conn) close(reason string) {
	c.closeOnce.Do(func() {
		c.s.log.Debug("closing connection", "conn", c.id, "reason", reason)
		c.s.forgetConn(c, "closed by the server: "+reason)
		c.cancel()
		_ = c.ws.CloseNow()
	})
}

// closeAfter closes after d, so a failure or stream error sent just before is handled first.
func (c *conn) closeAfter(d time.Duration, reason string) {
	if d <= 0 {
		c.close(reason)
		return
	}
	t := time.AfterFunc(d, func() { c.close(reason) })
	go func() {
		<-c.ctx.Done()
		t.Stop()
	}()
}

// readFrame returns the next complete frame from the client.
func (c *conn) readFrame(ctx context.Context) ([]byte, error) {
	for len(c.queued) == 0 {
		typ, msg, err := c.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageBinary {
			return nil, errors.New("text websocket message")
		}
		frames, err := c.reader.feed(msg)
		if err != nil {
			return nil, err
		}
		c.queued = append(c.queued, frames...)
	}
	f := c.queued[0]
	c.queued = c.queued[1:]
	return f, nil
}

// delayed returns a frame source that hands each frame over latency after
// it arrived (Options.Latency): a goroutine reads frames as they come,
// stamped with their arrival, so frames sent one after another are each
// delayed once and not one behind the other.
func (c *conn) delayed(latency time.Duration) func(ctx context.Context) ([]byte, error) {
	type arrival struct {
		frame []byte
		at    time.Time
		err   error
	}
	in := make(chan arrival, 1024)
	go func() {
		for {
			f, err := c.readFrame(c.ctx)
			select {
			case in <- arrival{f, time.Now(), err}:
			case <-c.ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return func(ctx context.Context) ([]byte, error) {
		var a arrival
		select {
		case a = <-in:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if a.err != nil {
			return nil, a.err
		}
		t := time.NewTimer(time.Until(a.at.Add(latency)))
		defer t.Stop()
		select {
		case <-t.C:
			return a.frame, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *conn) writeRaw(ctx context.Context, payload []byte) error {
	frame, err := encodeFrame(payload)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageBinary, frame)
}

// handshake runs the server side of Noise XX and returns the client payload and static key.
func (c *conn) handshake() (*waWa6.ClientPayload, []byte, error) {
	ctx, cancel := context.WithTimeout(c.ctx, handshakeTimeout)
	defer cancel()
	raw, err := c.readFrame(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read client hello: %w", err)
	}
	var hello waWa6.HandshakeMessage
	if err := proto.Unmarshal(raw, &hello); err != nil {
		return nil, nil, fmt.Errorf("unmarshal client hello: %w", err)
	}
	clientEph := hello.GetClientHello().GetEphemeral()
	if len(clientEph) != 32 {
		return nil, nil, errors.New("client hello: bad ephemeral key")
	}
	ns, err := newNoiseState(waHeader)
	if err != nil {
		return nil, nil, err
	}
	ns.authenticate(clientEph)
	eph := keys.NewKeyPair()
	ns.authenticate(eph.Pub[:])
	if err := ns.mixDH(eph.Priv[:], clientEph); err != nil {
		return nil, nil, err
	}
	encStatic := ns.encrypt(c.s.keys.static.Pub[:])
	if err := ns.mixDH(c.s.keys.static.Priv[:], clientEph); err != nil {
		return nil, nil, err
	}
	encCert := ns.encrypt(c.s.keys.certChain)
	out, err := proto.Marshal(&waWa6.HandshakeMessage{ServerHello: &waWa6.HandshakeMessage_ServerHello{
		Ephemeral: eph.Pub[:], Static: encStatic, Payload: encCert,
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("marshal server hello: %w", err)
	}
	if err := c.writeRaw(ctx, out); err != nil {
		return nil, nil, fmt.Errorf("send server hello: %w", err)
	}
	raw, err = c.readFrame(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read client finish: %w", err)
	}
	var finish waWa6.HandshakeMessage
	if err := proto.Unmarshal(raw, &finish); err != nil {
		return nil, nil, fmt.Errorf("unmarshal client finish: %w", err)
	}
	clientStatic, err := ns.decrypt(finish.GetClientFinish().GetStatic())
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt client static: %w", err)
	}
	if len(clientStatic) != 32 {
		return nil, nil, errors.New("client finish: bad static key")
	}
	if err := ns.mixDH(eph.Priv[:], clientStatic); err != nil {
		return nil, nil, err
	}
	payloadRaw, err := ns.decrypt(finish.GetClientFinish().GetPayload())
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt client finish: %w", err)
	}
	var payload waWa6.ClientPayload
	if err := proto.Unmarshal(payloadRaw, &payload); err != nil {
		return nil, nil, fmt.Errorf("unmarshal client payload: %w", err)
	}
	if c.readKey, c.writeKey, err = ns.split(); err != nil {
		return nil, nil, err
	}
	return &payload, clientStatic, nil
}

func (c *conn) run() error {
	payload, clientStatic, err := c.handshake()
	if err != nil {
		c.s.log.Debug("handshake failed", "conn", c.id, "err", err)
		return err
	}
	c.s.onClientPayload(c, payload, clientStatic)
	next := c.readFrame
	if c.s.opts.Latency > 0 {
		next = c.delayed(c.s.opts.Latency)
	}
	for {
		frame, err := next(c.ctx)
		if err != nil {
			return err
		}
		plain, err := c.readKey.Open(nil, nonce(c.readCtr), frame, nil)
		c.readCtr++
		if err != nil {
			return fmt.Errorf("decrypt frame: %w", err)
		}
		unpacked, err := waBinary.Unpack(plain)
		if err != nil {
			return fmt.Errorf("unpack node: %w", err)
		}
		node, err := waBinary.Unmarshal(unpacked)
		if err != nil {
			return fmt.Errorf("unmarshal node: %w", err)
		}
		c.s.handleNode(c, node)
	}
}

// send encrypts and writes one node.
func (c *conn) send(n waBinary.Node) error {
	if c.brokenBy() == FaultDeaf && pushedUnasked[n.Tag] {
		c.s.emit(Event{Kind: EventPushWithheld, ConnID: c.id, JID: c.jidString(), Detail: n.Tag})
		return errDeaf
	}
	data, err := waBinary.Marshal(n)
	if err != nil {
		return fmt.Errorf("marshal %s node: %w", n.Tag, err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ct := c.writeKey.Seal(nil, nonce(c.writeCtr), data, nil)
	c.writeCtr++
	if err := c.writeRaw(c.ctx, ct); err != nil {
		return fmt.Errorf("send %s node: %w", n.Tag, err)
	}
	return nil
}

// pushedUnasked are the nodes WhatsApp pushes without being asked (not
// answers to an iq, not acks), which a deaf connection stops sending.
var pushedUnasked = map[string]bool{
	"message": true, "receipt": true, "notification": true, "presence": true, "chatstate": true, "call": true,
}

var errDeaf = errors.New("connection is deaf (fault)")

// breakConn marks the connection as WhatsApp's side of a stuck socket.
func (c *conn) breakConn(k FaultKind) {
	c.mu.Lock()
	c.broken = k
	c.mu.Unlock()
}

func (c *conn) brokenBy() FaultKind {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

func (c *conn) sendLogged(n waBinary.Node) {
	if err := c.send(n); err != nil && c.ctx.Err() == nil {
		c.s.log.Debug("send failed", "conn", c.id, "tag", n.Tag, "err", err)
	}
}

func (c *conn) newID(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextReqID++
	return fmt.Sprintf("%s.%d.%d", prefix, c.id, c.nextReqID)
}

// request sends a server-initiated iq and waits for the client's result or error.
func (c *conn) request(ctx context.Context, n waBinary.Node) (*waBinary.Node, error) {
	id, _ := n.Attrs["id"].(string)
	ch := make(chan *waBinary.Node, 1)
	c.mu.Lock()
	c.waiters[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	if err := c.send(n); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, errors.New("connection closed while waiting for the client")
	}
}

// deliverResponse hands an iq result/error to a waiting request; reports whether one was waiting.
func (c *conn) deliverResponse(n *waBinary.Node) bool {
	id, _ := n.Attrs["id"].(string)
	c.mu.Lock()
	ch, ok := c.waiters[id]
	c.mu.Unlock()
	if ok {
		ch <- n
	}
	return ok
}

// sendStreamError sends <stream:error> and closes after the configured delay.
func (c *conn) sendStreamError(code string, conflict string, immediate bool) {
	n := waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{}}
	if code != "" {
		n.Attrs["code"] = code
	}
	if conflict != "" {
		n.Content = []waBinary.Node{{Tag: "conflict", Attrs: waBinary.Attrs{"type": conflict}}}
	}
	c.s.emit(Event{Kind: EventStreamError, ConnID: c.id, JID: c.jidString(), Detail: strings.TrimSpace(code + " " + conflict)})
	c.sendLogged(n)
	c.closeAfter(c.s.closeDelay(immediate), "stream error "+code+" "+conflict)
}

// sendFailure sends <failure reason=..> and closes after the configured delay.
func (c *conn) sendFailure(reason int, attrs waBinary.Attrs, immediate bool) {
	a := waBinary.Attrs{"reason": fmt.Sprint(reason)}
	for k, v := range attrs {
		a[k] = v
	}
	c.s.emit(Event{Kind: EventFailure, ConnID: c.id, Detail: fmt.Sprint(reason)})
	c.sendLogged(waBinary.Node{Tag: "failure", Attrs: a})
	c.closeAfter(c.s.closeDelay(immediate), fmt.Sprintf("failure %d", reason))
}
