package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// client talks to the bots and the sandbox; every request is bounded so a
// hung process cannot stall a loop.
var client = &http.Client{Timeout: 5 * time.Second}

// sandboxListening is what blacksky-sandbox prints once its control API
// serves and every --contacts contact exists (the API answers before the
// contacts are added, so a poll of it raced them).
const sandboxListening = "WhatsApp sandbox listening on"

// sandbox is the running blacksky-sandbox.
type sandbox struct {
	*proc.Process
	url   string
	trust string // the trust file it wrote (the bots' WA_SANDBOX_TRUST)
}

func startSandbox(ctx context.Context, bin, dir string, contacts []string) (*sandbox, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	trust := filepath.Join(dir, "sandbox-trust.json")
	p, err := proc.Start(bin, proc.Options{
		Args: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--contacts", strings.Join(contacts, ","), "--log-level", "warn",
			"--trust-file", trust},
		Env:     proc.Env(dir, map[string]string{"PORT": "1"}),
		LogFile: filepath.Join(dir, "sandbox.log"),
	})
	if err != nil {
		return nil, err
	}
	sb := &sandbox{p, fmt.Sprintf("http://127.0.0.1:%d", port), trust}
	if err := p.WaitOutput(20*time.Second, sandboxListening); err != nil {
		p.Kill()
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	return sb, nil
}

func (sb *sandbox) fault(ctx context.Context, kind string, d time.Duration) error {
	body := map[string]string{"kind": kind}
	if d > 0 {
		body["duration"] = d.String()
	}
	if code := doJSON(ctx, "POST", sb.url+"/control/faults", body, nil); code != http.StatusOK {
		return fmt.Errorf("inject fault %s: HTTP %d", kind, code)
	}
	return nil
}

func (sb *sandbox) clearFaults(ctx context.Context) error {
	if code := doJSON(ctx, "DELETE", sb.url+"/control/faults", nil, nil); code != http.StatusNoContent {
		return fmt.Errorf("clear faults: HTTP %d", code)
	}
	return nil
}

// connections counts the sandbox's open client connections.
func (sb *sandbox) connections(ctx context.Context) (int, error) {
	var conns []json.RawMessage
	if code := doJSON(ctx, "GET", sb.url+"/control/connections", nil, &conns); code != http.StatusOK {
		return 0, fmt.Errorf("list connections: HTTP %d", code)
	}
	return len(conns), nil
}

// inboxMsg is one message a contact received.
type inboxMsg struct {
	ID   string    `json:"id"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

func (sb *sandbox) inbox(ctx context.Context, number string) ([]inboxMsg, error) {
	var in []inboxMsg
	if code := doJSON(ctx, "GET", sb.url+"/control/contacts/"+number+"/inbox", nil, &in); code != http.StatusOK {
		return nil, fmt.Errorf("read inbox of %s: HTTP %d", number, code)
	}
	return in, nil
}

// bot is one slot of a bot process: the loop restarts it whenever it ends,
// and counts the ends nobody asked for.
type bot struct {
	name    string
	port    int
	bin     string
	env     []string
	logPath string

	mu         sync.Mutex
	cur        *proc.Process
	expected   bool // the next exit was caused by the chaos loop
	starts     int
	unexpected []string
	started    chan struct{} // closed at the first start
}

func newBot(name, bin, dir string, vars map[string]string) (*bot, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	v := map[string]string{"PORT": fmt.Sprint(port)}
	for k, val := range vars {
		v[k] = val
	}
	return &bot{name: name, port: port, bin: bin, env: proc.Env(dir, v),
		logPath: filepath.Join(dir, name+".log"), started: make(chan struct{})}, nil
}

func (b *bot) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", b.port, path) }

// loop keeps the bot running until ctx ends, then kills it.
func (b *bot) loop(ctx context.Context) error {
	for {
		p, err := proc.Start(b.bin, proc.Options{Args: []string{"run"}, Env: b.env, LogFile: b.logPath})
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.cur, b.expected = p, false
		b.starts++
		if b.starts == 1 {
			close(b.started)
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			p.Kill()
			return nil
		case <-p.Done():
		}
		b.mu.Lock()
		if !b.expected {
			b.unexpected = append(b.unexpected, fmt.Sprintf("%s pid %d exited by itself: %s", b.name, p.Pid(), p.State()))
		}
		b.mu.Unlock()
		// A short pause keeps a bot that dies at once from spinning.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// current returns the running process (nil before the first start).
func (b *bot) current() *proc.Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// signal sends sig to the running process, marking its exit as expected.
func (b *bot) signal(sig syscall.Signal) *proc.Process {
	b.mu.Lock()
	p := b.cur
	b.expected = true
	b.mu.Unlock()
	if p != nil {
		p.Signal(sig)
	}
	return p
}

// botStatus is the part of /status the chaos run needs.
type botStatus struct {
	State  string `json:"state"`
	Holder string `json:"holder"`
}

// status reads /status; leads tells whether this process holds the account.
func (b *bot) status(ctx context.Context) (st botStatus, leads bool) {
	p := b.current()
	if p == nil || doJSON(ctx, "GET", b.url("/status"), nil, &st) != http.StatusOK {
		return st, false
	}
	return st, st.State != "standby" && strings.HasSuffix(st.Holder, fmt.Sprintf("/pid-%d", p.Pid()))
}

// doJSON sends body as JSON and decodes the answer into out; it returns the
// HTTP status, or 0 when the request failed.
func doJSON(ctx context.Context, method, url string, body, out any) int {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && resp.StatusCode < 300 {
			return 0
		}
	}
	return resp.StatusCode
}

// poll calls cond every 50 ms until it holds, ctx ends or d passes.
func poll(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", d, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
