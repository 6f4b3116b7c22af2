package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Storage faults (issue 13): what happens to the lease and the database
// under the bots, beside what happens to WhatsApp. Each broke a promise
// before: the lease file deleted or replaced left two holders for good;
// only the lease connection dropped let the standby connect before the
// holder noticed; PostgreSQL dropping every connection for a few seconds
// ended the process; a full disk kept /readyz at 200.

func storageActions(h *harness) []action {
	if h.cfg.store == "sqlite" {
		as := []action{
			onConnected(action{name: "lease file deleted", run: leaseFileDeleted}),
			onConnected(action{name: "lease file replaced", run: leaseFileReplaced}),
		}
		if h.diskFull != nil {
			as = append(as, action{name: "disk full", run: h.fillDisk})
		}
		return as
	}
	return []action{
		onConnected(action{name: "lease connection killed", run: leaseConnectionKilled}),
		action{name: "PostgreSQL drops every connection", run: dropConnections},
		action{name: "database black-holed", run: func(ctx context.Context, h *harness, rng *rand.Rand) error {
			h.pg.blackhole(randDuration(rng, 2*time.Second, 5*time.Second))
			return nil
		}},
	}
}

func (h *harness) leasePath() string {
	return filepath.Join(h.dir, "data", "blacksky.db.lease-chaos")
}

func leaseFileDeleted(_ context.Context, h *harness, _ *rand.Rand) error {
	if err := os.Remove(h.leasePath()); err != nil {
		return fmt.Errorf("delete lease file: %w", err)
	}
	return nil
}

func leaseFileReplaced(_ context.Context, h *harness, _ *rand.Rand) error {
	tmp := h.leasePath() + ".chaos"
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		return fmt.Errorf("replace lease file: %w", err)
	}
	if err := os.Rename(tmp, h.leasePath()); err != nil {
		return fmt.Errorf("replace lease file: %w", err)
	}
	return nil
}

// terminate ends the bots' PostgreSQL backends that match where, from a
// connection of the harness's own (not through the proxy).
func (h *harness) terminate(ctx context.Context, where string) (int, error) {
	db, err := sql.Open("pgx", h.pgDirect)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a
		WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND `+where).Scan(&n)
	return n, err
}

// leaseConnectionKilled drops only the holder's lease connection: the one
// backend of the database holding an advisory lock.
func leaseConnectionKilled(ctx context.Context, h *harness, _ *rand.Rand) error {
	n, err := h.terminate(ctx, `a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`)
	if err != nil {
		return fmt.Errorf("kill the lease connection: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("kill the lease connection: no backend held the lease")
	}
	return nil
}

// dropConnections has PostgreSQL drop every connection of the bots every
// 100 ms for a few seconds.
func dropConnections(ctx context.Context, h *harness, rng *rand.Rand) error {
	end := time.Now().Add(randDuration(rng, 2*time.Second, 4*time.Second))
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(end) {
		if _, err := h.terminate(ctx, "true"); err != nil {
			return fmt.Errorf("drop connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// pgProxy stands between the bots and PostgreSQL so that the database can
// be black-holed: connections stay open and nothing crosses them, as when a
// network path dies without a reset.
type pgProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	until  time.Time
	resume chan struct{} // closed when the current black hole ends
}

func startPGProxy(target string) (*pgProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL proxy: %w", err)
	}
	p := &pgProxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

// url is dbURL with its host replaced by the proxy's.
func (p *pgProxy) url(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Host = p.ln.Addr().String()
	return u.String(), nil
}

func (p *pgProxy) close() { p.ln.Close() }

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *pgProxy) pipe(c net.Conn) {
	defer c.Close()
	p.wait()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.wait()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(s, c)
	go cp(c, s)
	<-done
}

// wait returns when no black hole is on.
func (p *pgProxy) wait() {
	p.mu.Lock()
	ch := p.resume
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// blackhole stops all traffic for d.
func (p *pgProxy) blackhole(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		return
	}
	ch := make(chan struct{})
	p.resume = ch
	time.AfterFunc(d, func() {
		p.mu.Lock()
		p.resume = nil
		p.mu.Unlock()
		close(ch)
	})
}

// diskFull is a small file system for the SQLite data directory, so that
// "disk full" fills it and not the machine's disk. It needs root (mount); a
// run without it leaves the action out and says so.
type diskFull struct {
	dir string
}

func mountSmallDisk(dir string) (*diskFull, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mount a small file system for the data directory: %v: %s", err, out)
	}
	return &diskFull{dir: dir}, nil
}

func (d *diskFull) unmount() {
	exec.Command("umount", "-l", d.dir).Run()
}

// fillDisk fills the data directory's file system for a few seconds.
func (h *harness) fillDisk(ctx context.Context, _ *harness, rng *rand.Rand) error {
	ballast := filepath.Join(h.diskFull.dir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		return fmt.Errorf("fill disk: %w", err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: full
		}
	}
	f.Close()
	defer os.Remove(ballast)
	select {
	case <-ctx.Done():
	case <-time.After(randDuration(rng, 2*time.Second, 4*time.Second)):
	}
	return nil
}

// connWatch follows the sandbox's events during the run: how many logged-in
// connections the account had at once (two means two processes drove it),
// and how many messages from the bot a contact could not decrypt.
type connWatch struct {
	mu       sync.Mutex
	seq      uint64
	loggedIn map[uint64]bool
	most     int
	failed   map[string]string // message ID -> why a contact could not decrypt a copy
	missed   bool              // the sandbox dropped events before they were read
	examples []string
}

type sandboxEvent struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	ConnID uint64    `json:"conn_id"`
	Detail string    `json:"detail"`
}

func (h *harness) watchConnections(ctx context.Context, w *connWatch) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		w.poll(ctx, h.sb)
		select {
		case <-ctx.Done():
			w.poll(context.WithoutCancel(ctx), h.sb)
			return
		case <-t.C:
		}
	}
}

func (w *connWatch) poll(ctx context.Context, sb *sandbox) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var events []sandboxEvent
	if doJSON(ctx, "GET", fmt.Sprintf("%s/control/events?since=%d", sb.url, w.seq), nil, &events) != 200 {
		return
	}
	if w.loggedIn == nil {
		w.loggedIn = map[uint64]bool{}
	}
	for _, e := range events {
		if w.seq != 0 && e.Seq != w.seq+1 {
			w.missed = true
		}
		w.seq = e.Seq
		switch e.Kind {
		case "login":
			w.loggedIn[e.ConnID] = true
			if len(w.loggedIn) > w.most {
				w.most = len(w.loggedIn)
			}
			if len(w.loggedIn) > 1 && len(w.examples) < 5 {
				w.examples = append(w.examples, fmt.Sprintf("%d connections logged in at once at %s", len(w.loggedIn), e.Time.UTC().Format("15:04:05.000")))
			}
		case "conn_closed":
			delete(w.loggedIn, e.ConnID)
		case "decrypt_failed":
			if w.failed == nil {
				w.failed = map[string]string{}
			}
			id, _, _ := strings.Cut(e.Detail, ":")
			w.failed[id] = e.Time.UTC().Format("15:04:05.000") + ": " + e.Detail
		}
	}
}
