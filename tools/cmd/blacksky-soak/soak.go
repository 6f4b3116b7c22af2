package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// newClient is an HTTP client for 127.0.0.1 that keeps up to idle
// connections per host open.
func newClient(idle int) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: idle, Proxy: nil}}
}

// client samples and drives setup; loadClient carries the load and drops
// its keep-alive connections when the load ends, so that the bot's server
// goroutines for them do not count as goroutines that outlived the load.
var client, loadClient = newClient(2), newClient(32)

// call does a JSON request with client and decodes the answer into out
// (when not nil).
func call(ctx context.Context, method, url string, body, out any) (int, error) {
	return callWith(ctx, client, method, url, body, out)
}

func callWith(ctx context.Context, client *http.Client, method, url string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, err
		}
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, nil
}

// readRSS is VmRSS of pid in MB.
func readRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %v", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// trafficStats counts what the load generator did.
type trafficStats struct {
	accepted, refused, failed, skipped, inbound atomic.Int64
}

type trafficCounts struct{ accepted, refused, failed, skipped, inbound int64 }

type fault struct {
	T    float64
	Kind string
	Code int
}

type result struct {
	samples []sample
	faults  []fault
	stats   trafficCounts
	idle    time.Duration
	load    time.Duration
}

func (r result) faultCounts() map[string]int {
	m := map[string]int{}
	for _, f := range r.faults {
		m[f.Kind]++
	}
	return m
}

// faultKind is the i-th fault injected (0-based): mostly drops, with a
// server restart (515) and a stream error 503 now and then.
func faultKind(i int) string {
	switch {
	case i%7 == 6:
		return "stream_503"
	case i%5 == 4:
		return "restart"
	default:
		return "drop"
	}
}

// pace calls fire rate times per second until ctx ends, handing each call
// to a bounded worker pool; calls that find the pool busy are skipped and
// counted, so a slow bot never piles up goroutines here.
func pace(ctx context.Context, rate float64, jobs chan<- func(), skipped *atomic.Int64, fire func(n int64) func()) {
	if rate <= 0 {
		return
	}
	start := time.Now()
	var issued int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int64(rate * time.Since(start).Seconds())
		for ; issued < due; issued++ {
			select {
			case jobs <- fire(issued):
			default:
				skipped.Add(1)
			}
		}
	}
}

func soak(ctx context.Context, cfg config, log io.Writer) (result, error) {
	var res result
	tmp, err := os.MkdirTemp("", "blacksky-soak-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return res, err
	}

	binary := cfg.Binary
	if binary == "" {
		fmt.Fprintln(log, "building blacksky ...")
		if binary, err = testkit.BuildBlacksky(ctx, tmp); err != nil {
			return res, err
		}
	}
	sandboxBin := cfg.SandboxBinary
	if sandboxBin == "" {
		fmt.Fprintln(log, "building blacksky-sandbox ...")
		if sandboxBin, err = testkit.BuildSandbox(ctx, tmp); err != nil {
			return res, err
		}
	}

	contacts := make([]string, cfg.Contacts)
	for i := range contacts {
		contacts[i] = fmt.Sprintf("1555%07d", 1000+i)
	}
	sbPort, err := proc.FreePort()
	if err != nil {
		return res, err
	}
	sbURL := fmt.Sprintf("http://127.0.0.1:%d", sbPort)
	trust := filepath.Join(tmp, "sandbox-trust.json")
	sb, err := proc.Start(sandboxBin, proc.Options{
		Args:    []string{"--listen", fmt.Sprintf("127.0.0.1:%d", sbPort), "--contacts", strings.Join(contacts, ","), "--trust-file", trust},
		Env:     proc.Env(tmp, map[string]string{"PORT": "1"}),
		LogFile: filepath.Join(tmp, "sandbox.log"),
	})
	if err != nil {
		return res, err
	}
	defer sb.Stop(5 * time.Second)
	// Printed once the control API serves and every contact exists (the API
	// answers before the contacts are added).
	if err := sb.WaitOutput(30*time.Second, "WhatsApp sandbox listening on"); err != nil {
		return res, err
	}

	botPort, err := proc.FreePort()
	if err != nil {
		return res, err
	}
	botURL := fmt.Sprintf("http://127.0.0.1:%d", botPort)
	dataDir := filepath.Join(tmp, "data")
	botEnv := proc.Env(tmp, map[string]string{
		"PORT": strconv.Itoa(botPort), "DATA_DIR": dataDir, "WA_SANDBOX": sbURL, "WA_SANDBOX_TRUST": trust, "SESSION_ID": "soak",
		"RECONNECT_BASE_DELAY": "100ms", "RECONNECT_MAX_DELAY": "1s", "RECONNECT_PROBE_INTERVAL": "100ms",
		"SEND_RATE_PER_MINUTE": "0", "SEND_CHAT_GAP": "0", "OUTGOING_RETRY_BASE_DELAY": "100ms",
		"OUTGOING_RETRY_MAX_DELAY": "1s", "OUTGOING_SEND_TIMEOUT": "2s", "LEASE_INTERVAL": "100ms",
		"OWNER_NUMBER": contacts[0],
	})
	bot, err := proc.Start(binary, proc.Options{Env: botEnv, LogFile: filepath.Join(tmp, "bot.log")})
	if err != nil {
		return res, err
	}
	defer bot.Stop(10 * time.Second)

	// Pair through the control API.
	var pair struct {
		QR string `json:"qr"`
	}
	if err := proc.WaitFor(ctx, 60*time.Second, "a QR code on /api/v1/pair", func() bool {
		call(ctx, "GET", botURL+"/api/v1/pair", nil, &pair)
		return pair.QR != ""
	}, bot, sb); err != nil {
		return res, err
	}
	if code, err := call(ctx, "POST", sbURL+"/control/phone/scan", map[string]string{"qr": pair.QR}, nil); code != http.StatusOK {
		return res, fmt.Errorf("sandbox phone scan: %d %v", code, err)
	}
	if err := proc.WaitFor(ctx, 60*time.Second, "the bot to be ready", func() bool {
		code, _ := call(ctx, "GET", botURL+"/readyz", nil, nil)
		return code == http.StatusOK
	}, bot, sb); err != nil {
		return res, err
	}
	pid := bot.Pid()
	fmt.Fprintf(log, "bot pid %d paired with the sandbox on %s; idle %s, load %s at %.0f/s (+%.1f/s from contacts, a fault every %s), cool-down %s\n",
		pid, sbURL, cfg.Idle, cfg.load(), cfg.Rate, cfg.ContactRate, cfg.DropEvery, cfg.Idle)

	var stats trafficStats
	var (
		mu     sync.Mutex
		faults []fault
	)
	t0 := time.Now()
	loadStart, loadEnd := t0.Add(cfg.Idle), t0.Add(cfg.Idle+cfg.load())
	end := t0.Add(cfg.Duration)
	phaseAt := func(t time.Time) string {
		switch {
		case t.Before(loadStart):
			return phaseIdle
		case t.Before(loadEnd):
			return phaseLoad
		default:
			return phaseCooldown
		}
	}

	// The load: paced generators feeding a bounded pool of workers.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	jobs := make(chan func(), 64)
	const workers = 16
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-loadCtx.Done():
					return
				case job := <-jobs:
					job()
				}
			}
		})
	}
	startLoad := func() {
		wg.Go(func() {
			pace(loadCtx, cfg.Rate, jobs, &stats.skipped, func(n int64) func() {
				return func() {
					to := contacts[n%int64(len(contacts))]
					code, err := callWith(loadCtx, loadClient, "POST", botURL+"/api/v1/messages",
						map[string]string{"to": to, "text": fmt.Sprintf("soak message %d to %s", n, to)}, nil)
					switch {
					case err != nil && loadCtx.Err() != nil:
					case code == http.StatusAccepted || code == http.StatusOK:
						stats.accepted.Add(1)
					case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests:
						stats.refused.Add(1)
					default:
						stats.failed.Add(1)
					}
				}
			})
		})
		wg.Go(func() {
			pace(loadCtx, cfg.ContactRate, jobs, &stats.skipped, func(n int64) func() {
				return func() {
					from := contacts[(n*7+3)%int64(len(contacts))]
					text := ".ping"
					if n%2 == 1 {
						text = fmt.Sprintf("hello bot, this is message %d", n)
					}
					code, _ := callWith(loadCtx, loadClient, "POST", sbURL+"/control/contacts/"+from+"/send", map[string]string{"text": text}, nil)
					if code >= 200 && code < 300 {
						stats.inbound.Add(1)
					}
				}
			})
		})
		if cfg.DropEvery > 0 {
			wg.Go(func() {
				tick := time.NewTicker(cfg.DropEvery)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-loadCtx.Done():
						return
					case <-tick.C:
					}
					kind := faultKind(i)
					code, _ := call(loadCtx, "POST", sbURL+"/control/faults", map[string]string{"kind": kind}, nil)
					mu.Lock()
					faults = append(faults, fault{T: time.Since(t0).Seconds(), Kind: kind, Code: code})
					mu.Unlock()
				}
			})
		}
	}

	// Sampling, on this goroutine; the load starts and stops on schedule.
	sampleOnce := func(now time.Time) (sample, error) {
		s := sample{T: now.Sub(t0).Seconds(), Phase: phaseAt(now), HeapMB: math.NaN(), SysMB: math.NaN(), Goroutines: -1, Sent: -1, Pending: -1}
		rss, err := readRSS(pid)
		if err != nil {
			return s, fmt.Errorf("read the bot's RSS: %w", err)
		}
		s.RSSMB = rss
		var st struct {
			Memory struct {
				HeapAllocMB float64 `json:"heap_alloc_mb"`
				SysMB       float64 `json:"sys_mb"`
				Goroutines  int     `json:"goroutines"`
			} `json:"memory"`
		}
		if code, err := call(ctx, "GET", botURL+"/status", nil, &st); code == http.StatusOK && err == nil {
			s.HeapMB, s.SysMB, s.Goroutines = st.Memory.HeapAllocMB, st.Memory.SysMB, st.Memory.Goroutines
		}
		var q struct {
			Depths map[string]int `json:"depths"`
		}
		if code, err := call(ctx, "GET", botURL+"/api/v1/queue", nil, &q); code == http.StatusOK && err == nil {
			// Sent is every message WhatsApp took: sent and each step its
			// receipts took it to (or the watchdog).
			s.Sent = q.Depths["sent"] + q.Depths["undelivered"] + q.Depths["delivered"] + q.Depths["read"] + q.Depths["played"]
			s.Pending = q.Depths["pending"] + q.Depths["sending"]
		}
		s.Accepted = int(stats.accepted.Load())
		return s, nil
	}

	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	loadRunning, loadDone := false, false
	var runErr error
	maxSamples := int(cfg.Duration/cfg.Interval) + 2
	for n := 0; n < maxSamples; n++ {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if !loadRunning && !now.Before(loadStart) {
			loadRunning = true
			fmt.Fprintf(log, "%5.0fs load phase begins\n", now.Sub(t0).Seconds())
			startLoad()
		}
		if loadRunning && !loadDone && !now.Before(loadEnd) {
			loadDone = true
			stopLoad()
			wg.Wait()
			loadClient.CloseIdleConnections()
			fmt.Fprintf(log, "%5.0fs cool-down begins\n", time.Since(t0).Seconds())
		}
		if bot.Exited() {
			runErr = fmt.Errorf("the bot exited (%s) during the run:\n%s", bot.State(), bot.Tail())
			break
		}
		s, err := sampleOnce(now)
		if err != nil {
			runErr = err
			break
		}
		res.samples = append(res.samples, s)
		if n%10 == 0 {
			fmt.Fprintf(log, "%5.0fs %-8s rss %6.1f MB heap %6.1f MB sys %6.1f MB goroutines %4d sent %6d pending %5d\n",
				s.T, s.Phase, s.RSSMB, s.HeapMB, s.SysMB, s.Goroutines, s.Sent, s.Pending)
		}
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
		case <-tick.C:
		}
		if runErr != nil {
			break
		}
	}
	stopLoad()
	wg.Wait()
	mu.Lock()
	res.faults = faults
	mu.Unlock()
	sort.Slice(res.faults, func(i, j int) bool { return res.faults[i].T < res.faults[j].T })
	res.stats = trafficCounts{stats.accepted.Load(), stats.refused.Load(), stats.failed.Load(), stats.skipped.Load(), stats.inbound.Load()}
	res.idle, res.load = cfg.Idle, cfg.load()
	if runErr != nil {
		return res, runErr
	}
	if len(res.samples) == 0 {
		return res, errors.New("no samples taken")
	}
	if res.stats.accepted == 0 {
		return res, fmt.Errorf("the API accepted no messages: the load did not happen\n%s", bot.Tail())
	}
	return res, nil
}
