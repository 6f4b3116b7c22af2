package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/cli"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

// demo is one narrated run of the product against an in-process sandbox.
// The bot is `blacksky run` itself, built by the product's composition root
// (cli.Program.Run, what cmd/blacksky runs), configured only through its
// environment and watched only through its HTTP API, as an operator would
// watch it; the sandbox plays the phone and the contact. So what the demo
// shows is what ships: the pairing, the outgoing queue, the reconnect, the
// bot's commands and the clean stop.
type demo struct {
	out   io.Writer
	start time.Time
	// logs receive the bot's and the sandbox's logs; level is theirs.
	logs  io.Writer
	level slog.Level
	srv   *sandbox.Server
	// api is the bot's HTTP API (http://127.0.0.1:port), on loopback, so
	// no token is needed.
	api     string
	client  *http.Client
	bot     *botRun
	account string // the device the bot paired as
	contact *sandbox.Contact
}

// botRun is the bot running in a goroutine: done is closed when it has
// exited, with code.
type botRun struct {
	done chan struct{}
	code int
}

const (
	demoContact = "15550000002"
	// demoPrefix is the bot's command prefix (PREFIX), so the contact's
	// ".ping" is a command.
	demoPrefix = "."
	// pollEvery is how often the demo asks the bot's API while it waits;
	// every wait ends at the --timeout deadline.
	pollEvery = 25 * time.Millisecond
)

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.2fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func demoCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fs.Bool("verbose", false, "also print the bot's and the sandbox's logs")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	// Quiet, the logs are kept and shown only if the demo fails.
	kept := &syncWriter{w: &bytes.Buffer{}}
	d := &demo{out: env.stdout, start: time.Now(), logs: kept, level: slog.LevelWarn,
		client: &http.Client{Timeout: 5 * time.Second}}
	if *verbose {
		d.logs, d.level = &syncWriter{w: env.stderr}, slog.LevelInfo
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := d.run(ctx); err != nil {
		d.say("demo failed: %v", err)
		if !*verbose {
			fmt.Fprintf(env.stderr, "the bot's and the sandbox's logs (warnings and errors; --verbose shows all as they come):\n%s", kept.String())
		}
		return exitFailure
	}
	d.say("demo finished: paired, sent through the queue to the contact, delivered and read, reconnected after a drop, the bot replied to a command, shut down cleanly")
	return exitOK
}

func (d *demo) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "blacksky-demo-")
	if err != nil {
		return fmt.Errorf("create the demo's directory: %w", err)
	}
	defer os.RemoveAll(dir)
	d.say("data directory %s (deleted at the end)", dir)
	trustFile := filepath.Join(dir, "sandbox-trust.json")
	if err := d.startSandbox(ctx, trustFile); err != nil {
		return err
	}
	// Closed last: the bot stops (deferred below) while it can still reach it.
	defer d.srv.Close()

	runCtx, stopBot := context.WithCancel(ctx)
	defer stopBot()
	if err := d.startBot(runCtx, dir, trustFile); err != nil {
		return err
	}
	defer func() { stopBot(); <-d.bot.done }()

	for _, step := range []func(context.Context) error{d.pair, d.send, d.drop, d.command} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return d.shutdown(stopBot)
}

// startSandbox starts the simulator on a free loopback port, writing what a
// bot must trust to trustFile, as `blacksky-sandbox` does.
func (d *demo) startSandbox(ctx context.Context, trustFile string) error {
	var err error
	d.srv, err = sandbox.New(sandbox.Options{Logger: logging.New(d.logs, "text", d.level).With("component", "sandbox"), TrustFile: trustFile})
	if err == nil {
		err = d.srv.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("start the sandbox: %w", err)
	}
	d.say("WhatsApp sandbox listening on %s, its trust written to %s", d.srv.Addr(), trustFile)
	return nil
}

// startBot runs `blacksky run` in this process, configured as an operator
// would configure it for a sandbox. Its environment is this map alone, so
// nothing of the shell's (a DATABASE_URL, an API_TOKEN) changes the demo.
func (d *demo) startBot(ctx context.Context, dataDir, trustFile string) error {
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d.api = "http://" + listen
	env := map[string]string{
		"DATA_DIR":         dataDir,
		"LISTEN_ADDR":      listen,
		"WA_SANDBOX":       d.srv.ControlURL(),
		"WA_SANDBOX_TRUST": trustFile,
		"PREFIX":           demoPrefix,
		"SEND_CHAT_GAP":    "0",
		"LOG_LEVEL":        strings.ToLower(d.level.String()),
	}
	getenv := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	d.bot = &botRun{done: make(chan struct{})}
	go func() {
		defer close(d.bot.done)
		d.bot.code = cli.Program{}.Run(ctx, []string{"run"}, d.logs, d.logs, getenv)
	}()
	d.say("started `blacksky run` in this process (the product's own composition root); its HTTP API is %s", d.api)
	return nil
}

func (d *demo) pair(ctx context.Context) error {
	d.say("the bot has no session: waiting for its QR code (GET /api/v1/pair)")
	var p struct {
		QR string `json:"qr"`
	}
	if err := d.until(ctx, "a QR code from /api/v1/pair", func(ctx context.Context) (bool, error) {
		_, err := d.get(ctx, "/api/v1/pair", &p)
		return p.QR != "", err
	}); err != nil {
		return err
	}
	d.say("QR code shown; the simulated phone scans it")
	if err := d.srv.ScanQR(ctx, p.QR); err != nil {
		return fmt.Errorf("scan the QR code: %w", err)
	}
	if err := d.until(ctx, "/readyz to answer 200", func(ctx context.Context) (bool, error) {
		code, err := d.get(ctx, "/readyz", nil)
		return code == http.StatusOK, err
	}); err != nil {
		return err
	}
	st, err := d.status(ctx)
	if err != nil {
		return err
	}
	d.account = st.Account
	d.say("paired as %s and logged in: /readyz 200, /status %s", st.Account, st.State)
	return nil
}

func (d *demo) send(ctx context.Context) error {
	var err error
	if d.contact, err = d.srv.AddContact(demoContact); err != nil {
		return fmt.Errorf("add the contact: %w", err)
	}
	text := "Hello from blacksky!"
	d.say("POST /api/v1/messages: %q to contact +%s", text, demoContact)
	posted := time.Now()
	var msg queued
	code, err := d.post(ctx, "/api/v1/messages", map[string]string{"to": "+" + demoContact, "text": text}, &msg)
	if err != nil || code != http.StatusAccepted {
		return fmt.Errorf("POST /api/v1/messages: status %d: %v", code, err)
	}
	d.say("queued as message %d (WhatsApp ID %s), state %s", msg.ID, msg.WAID, msg.State)
	got, err := d.delivered(ctx, msg.WAID)
	if err != nil {
		return err
	}
	d.say("the queue sent it and the contact decrypted message %s (%s): %q; its delivery receipt came back (API: delivered), %s after the POST",
		got.ID, got.Type, got.Text, time.Since(posted).Round(time.Millisecond))
	d.say("the contact opens the chat and reads it")
	if _, err := d.contact.Read(got.ID); err != nil {
		return fmt.Errorf("the contact's read: %w", err)
	}
	if err := d.until(ctx, "message "+got.ID+" read", func(ctx context.Context) (bool, error) {
		st, err := d.state(ctx, got.ID)
		return st == "read", err
	}); err != nil {
		return err
	}
	d.say("its read receipt came back (API: read; GET /api/v1/messages/%d/receipts lists both)", msg.ID)
	return nil
}

func (d *demo) drop(ctx context.Context) error {
	d.say("the sandbox drops the connection")
	dropped := time.Now()
	if err := d.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
		return fmt.Errorf("drop the connection: %w", err)
	}
	// A connection that had logged in is redialled at once: wait for a
	// login newer than the drop.
	var st botStatus
	if err := d.until(ctx, "/status connected since after the drop", func(ctx context.Context) (bool, error) {
		var err error
		st, err = d.status(ctx)
		return st.State == "connected" && st.Since.After(dropped), err
	}); err != nil {
		return fmt.Errorf("%w (now %s: %s)", err, st.State, st.Reason)
	}
	d.say("reconnected %s after the drop (/status connected), same session, no pairing", st.Since.Sub(dropped).Round(time.Millisecond))
	return nil
}

// command has the contact send the bot a command and waits for its answer,
// which the bot sends through its queue like any other message.
func (d *demo) command(ctx context.Context) error {
	text := demoPrefix + "ping"
	before := len(d.contact.Inbox())
	d.say("contact +%s sends %q", demoContact, text)
	sent := time.Now()
	if _, err := d.contact.Send(ctx, text); err != nil {
		return fmt.Errorf("the contact's send: %w", err)
	}
	var reply sandbox.InboxMessage
	if err := d.until(ctx, "the bot's reply in the contact's inbox", func(context.Context) (bool, error) {
		inbox := d.contact.Inbox()
		if len(inbox) > before {
			reply = inbox[before]
			return true, nil
		}
		return false, nil
	}); err != nil {
		return err
	}
	if _, err := d.delivered(ctx, reply.ID); err != nil {
		return fmt.Errorf("the reply %s is not the queue's: %w", reply.ID, err)
	}
	d.say("the bot replied through its queue (API: delivered) %s after the command; the contact got %q",
		time.Since(sent).Round(time.Millisecond), reply.Text)
	return nil
}

// shutdown ends the bot's context, as SIGTERM would, and checks that it
// exited 0 with its device still linked: a clean stop never logs out.
func (d *demo) shutdown(stop context.CancelFunc) error {
	d.say("stopping the bot (its context ends, as on SIGTERM)")
	stopped := time.Now()
	stop()
	<-d.bot.done
	if d.bot.code != 0 {
		return fmt.Errorf("the bot exited with code %d after its stop, want 0", d.bot.code)
	}
	for _, dev := range d.srv.LinkedDevices() {
		if dev.String() == d.account {
			d.say("the bot shut down cleanly in %s (exit 0); %s is still linked: no logout",
				time.Since(stopped).Round(time.Millisecond), d.account)
			return nil
		}
	}
	return fmt.Errorf("the bot exited 0 but its device %s is no longer linked (linked: %v): it logged out", d.account, d.srv.LinkedDevices())
}

// delivered waits until the bot's API lists the message with WhatsApp ID
// waID as delivered (the contact's delivery receipt reached the bot) and
// the contact's inbox holds it, and returns it as the contact received it.
func (d *demo) delivered(ctx context.Context, waID string) (sandbox.InboxMessage, error) {
	var got sandbox.InboxMessage
	err := d.until(ctx, "message "+waID+" delivered and at the contact", func(ctx context.Context) (bool, error) {
		if st, err := d.state(ctx, waID); st != "delivered" || err != nil {
			return false, err
		}
		for _, m := range d.contact.Inbox() {
			if m.ID == waID {
				got = m
				return true, nil
			}
		}
		return false, nil
	})
	return got, err
}

// state is the state the bot's API lists the message with WhatsApp ID
// waID in, among its newest; "" when it is not there.
func (d *demo) state(ctx context.Context, waID string) (string, error) {
	var list struct {
		Messages []queued `json:"messages"`
	}
	if _, err := d.get(ctx, "/api/v1/messages?limit=10", &list); err != nil {
		return "", err
	}
	for _, m := range list.Messages {
		if m.WAID == waID {
			return m.State, nil
		}
	}
	return "", nil
}

// queued is a message of the bot's outgoing queue, as its API shows it.
type queued struct {
	ID    int64  `json:"id"`
	WAID  string `json:"wa_id"`
	State string `json:"state"`
}

// botStatus is what the demo reads of GET /status.
type botStatus struct {
	State   string    `json:"state"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
	Account string    `json:"account"`
}

func (d *demo) status(ctx context.Context) (botStatus, error) {
	var st botStatus
	code, err := d.get(ctx, "/status", &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /status: status %d", code)
	}
	return st, err
}

// until asks cond every pollEvery until it holds; it gives up when ctx
// ends (the --timeout) or the bot exits, naming what it waited for and the
// last error cond met.
func (d *demo) until(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-d.bot.done:
			return fmt.Errorf("waiting for %s: the bot exited with code %d", what, d.bot.code)
		case <-tick.C:
		}
	}
}

// get asks the bot's API for path, decoding a JSON answer into v (when not
// nil), and returns the status code.
func (d *demo) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.api+path, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	return d.do(req, v)
}

// post sends body as JSON to path and decodes the answer into v.
func (d *demo) post(ctx context.Context, path string, body, v any) (int, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.api+path, bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return d.do(req, v)
}

func (d *demo) do(req *http.Request, v any) (int, error) {
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(v)
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read the answer: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, nil
}

// freeLoopbackPort is a port nothing listens on now, for the bot's HTTP
// API: LISTEN_ADDR takes no port 0.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the bot's API: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// syncWriter serialises writes: the bot's and the sandbox's loggers share it.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String is what was written, when w is a buffer.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.w.(*bytes.Buffer); ok {
		return b.String()
	}
	return ""
}
