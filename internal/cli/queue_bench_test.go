package cli

// Queue benchmarks: the whole bot (serve) in this process against an
// in-process sandbox with 100 contacts, on SQLite and on PostgreSQL.
// docs/QUEUE.md has the figures and how to read them. Run with
//
//	BLACKSKY_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres \
//	go test -run XXX -bench Queue -benchtime=1x ./internal/cli/

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/util/keys"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/testdb"
)

const (
	benchContacts = 100 // chats the benchmarks send to
	benchClients  = 8   // concurrent HTTP clients enqueueing
)

var (
	// benchRoot is every benchmark sandbox's noise root: whatsmeow trusts
	// one process-global key, set once before any client exists.
	benchRoot     = keys.NewKeyPair()
	benchInitOnce sync.Once
)

func benchInit() {
	benchInitOnce.Do(func() {
		whatsmeow.WACertPubKey = *benchRoot.Pub
		logging.InstallSignalLogger(slog.New(slog.DiscardHandler))
	})
}

// benchStores runs f once per store; f calls newDB for each bot's own
// database URL (empty for SQLite). PostgreSQL is skipped loudly unless
// BLACKSKY_TEST_POSTGRES is set.
func benchStores(b *testing.B, f func(b *testing.B, newDB func(testing.TB) string)) {
	b.Run("sqlite", func(b *testing.B) { f(b, func(testing.TB) string { return "" }) })
	b.Run("postgres", func(b *testing.B) { f(b, testdb.PostgresURL) })
}

// benchBot is a paired bot (serve, in this process) and its sandbox.
type benchBot struct {
	pg       *sql.DB // the bot's PostgreSQL database, for its statistics; nil on SQLite
	sb       *sandbox.Server
	api      string // the bot's base URL
	contacts []*sandbox.Contact
	client   *http.Client
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBenchBot starts a sandbox with benchContacts contacts and a bot on
// databaseURL (empty: SQLite in a temporary directory) with rate limits off,
// pairs them and waits until the bot is ready. Reconnect settings are the
// production defaults.
func startBenchBot(b *testing.B, databaseURL string) *benchBot {
	b.Helper()
	return startBenchBotOn(b, databaseURL, 0)
}

// startBenchBotOn is startBenchBot with a network round trip of latency
// between the clients and the sandbox (sandbox.Options.Latency).
func startBenchBotOn(b *testing.B, databaseURL string, latency time.Duration) *benchBot {
	b.Helper()
	benchInit()
	ctx, cancel := context.WithCancel(context.Background())
	trust := filepath.Join(b.TempDir(), "trust.json")
	sb, err := sandbox.New(sandbox.Options{NoiseRootKey: benchRoot.Priv[:], TrustFile: trust, Latency: latency})
	if err == nil {
		err = sb.Start(ctx)
	}
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); sb.Close() })
	bot := &benchBot{sb: sb, logs: &syncBuffer{}}
	for i := range benchContacts {
		ct, err := sb.AddContact(fmt.Sprintf("1555100%04d", i))
		if err != nil {
			b.Fatal(err)
		}
		bot.contacts = append(bot.contacts, ct)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := map[string]string{
		"WA_SANDBOX": sb.ControlURL(), "WA_SANDBOX_TRUST": trust, "DATA_DIR": b.TempDir(), "PORT": strconv.Itoa(port),
		"SEND_RATE_PER_MINUTE": "0", "SEND_CHAT_GAP": "0", "LOG_LEVEL": "warn",
		// The drain benchmark queues 10,000 messages, the default limit;
		// refusing enqueues is not what is measured here.
		"OUTGOING_MAX_PENDING": "1000000",
		"SHUTDOWN_TIMEOUT":     "20s",
	}
	if databaseURL != "" {
		env["DATABASE_URL"] = databaseURL
		if bot.pg, err = sql.Open("pgx", databaseURL); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bot.pg.Close() })
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load(getenv)
	if err != nil {
		b.Fatal(err)
	}
	log := logging.New(bot.logs, cfg.LogFormat, cfg.LogLevel)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &environment{stdout: io.Discard, stderr: io.Discard, getenv: getenv}, cfg, log)
	}()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Errorf("the bot did not stop within 30 s")
		}
		if b.Failed() {
			b.Logf("bot log:\n%s", bot.logs.String())
		}
	})
	bot.api = fmt.Sprintf("http://127.0.0.1:%d", port)
	bot.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients, DialContext: (&net.Dialer{}).DialContext},
	}
	b.Cleanup(bot.client.CloseIdleConnections)

	var pair struct {
		QR string `json:"qr"`
	}
	bot.waitFor(b, 30*time.Second, "a QR code on /api/v1/pair", func() bool {
		pair.QR = ""
		return bot.get("/api/v1/pair", &pair) == http.StatusOK && pair.QR != ""
	}, done)
	if err := sb.ScanQR(ctx, pair.QR); err != nil {
		b.Fatalf("scan: %v", err)
	}
	bot.waitReady(b, http.StatusOK, done)
	return bot
}

// get fetches path from the bot and decodes its JSON; 0 on transport errors.
func (bot *benchBot) get(path string, out any) int {
	resp, err := bot.client.Get(bot.api + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode
}

func (bot *benchBot) waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool, done <-chan error) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		if done != nil {
			select {
			case err := <-done:
				b.Fatalf("serve returned while waiting for %s: %v", what, err)
			default:
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (bot *benchBot) waitReady(b *testing.B, want int, done <-chan error) {
	b.Helper()
	bot.waitFor(b, 60*time.Second, fmt.Sprintf("/readyz to answer %d", want), func() bool {
		return bot.get("/readyz", nil) == want
	}, done)
}

// outage makes the sandbox refuse the bot until the returned function
// ends it, and waits until the bot has noticed.
func (bot *benchBot) outage(b *testing.B) (end func()) {
	b.Helper()
	if err := bot.sb.Inject(sandbox.Fault{Kind: sandbox.FaultDown, Duration: time.Hour}); err != nil {
		b.Fatal(err)
	}
	bot.waitReady(b, http.StatusServiceUnavailable, nil)
	return bot.sb.ClearFaults
}

type queued struct {
	ID        int64     `json:"id"`
	WAID      string    `json:"wa_id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	SentAt    time.Time `json:"sent_at"`
}

// post enqueues one message through the HTTP API.
func (bot *benchBot) post(to, text string) (queued, error) {
	body, _ := json.Marshal(map[string]string{"to": to, "text": text})
	resp, err := bot.client.Post(bot.api+"/api/v1/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return queued{}, err
	}
	defer resp.Body.Close()
	var m queued
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return queued{}, fmt.Errorf("POST /api/v1/messages: %d: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return queued{}, fmt.Errorf("POST /api/v1/messages: %d", resp.StatusCode)
	}
	return m, nil
}

// enqueueRun is the outcome of one enqueue batch.
type enqueueRun struct {
	elapsed time.Duration
	lat     []time.Duration // per POST, sorted
	done    []time.Time     // completion times, sorted
}

// rate is the enqueue rate over completions [from, to).
func (r enqueueRun) rate(from, to int) float64 {
	return float64(to-from-1) / r.done[to-1].Sub(r.done[from]).Seconds()
}

// enqueue posts n messages round-robin over the contacts from benchClients
// concurrent keep-alive clients.
func (bot *benchBot) enqueue(b *testing.B, prefix string, n int) enqueueRun {
	b.Helper()
	var next atomic.Int64
	lat := make([]time.Duration, n)
	done := make([]time.Time, n)
	errs := make(chan error, benchClients)
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				ct := bot.contacts[i%len(bot.contacts)]
				t0 := time.Now()
				if _, err := bot.post(ct.Number(), fmt.Sprintf("%s-%d", prefix, i)); err != nil {
					errs <- err
					return
				}
				done[i] = time.Now()
				lat[i] = done[i].Sub(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	slices.Sort(lat)
	slices.SortFunc(done, time.Time.Compare)
	return enqueueRun{elapsed, lat, done}
}

// inboxCounts is how many messages each contact has received so far.
func (bot *benchBot) inboxCounts() []int {
	n := make([]int, len(bot.contacts))
	for i, ct := range bot.contacts {
		n[i] = len(ct.Inbox())
	}
	return n
}

// waitInboxes waits until contact i holds want[i] messages and returns the
// arrival times of the first message after from[i] and of the last, over
// all contacts.
func (bot *benchBot) waitInboxes(b *testing.B, timeout time.Duration, from, want []int) (first, last time.Time) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for i, ct := range bot.contacts {
		for {
			in := ct.Inbox()
			if len(in) >= want[i] {
				if f := in[from[i]].Time; first.IsZero() || f.Before(first) {
					first = f
				}
				if l := in[want[i]-1].Time; l.After(last) {
					last = l
				}
				break
			}
			if time.Now().After(deadline) {
				total := 0
				for j, c := range bot.inboxCounts() {
					total += c - from[j]
				}
				b.Fatalf("after %s only %d of the messages have arrived", timeout, total)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return first, last
}

// commits is how many transactions PostgreSQL has committed in the bot's
// database so far (-1 on SQLite). Backends report their counts up to a
// second late, so it waits that long first.
func (bot *benchBot) commits(b *testing.B) int64 {
	if bot.pg == nil {
		return -1
	}
	time.Sleep(1500 * time.Millisecond)
	var n int64
	if err := bot.pg.QueryRow("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func plus(counts []int, k int) []int {
	out := make([]int, len(counts))
	for i, c := range counts {
		out[i] = c + k
	}
	return out
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// cpuTime is the CPU time this process (bot, sandbox and benchmark) used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkQueueEnqueueHTTP measures durable enqueues through POST
// /api/v1/messages: 5,000 per iteration from 8 concurrent keep-alive
// clients over 100 chats. "paused": the sandbox is down, so delivery does
// not compete for CPU and database; "delivering": the bot is connected and
// sends while the API enqueues.
func BenchmarkQueueEnqueueHTTP(b *testing.B) {
	const n = 5000
	benchStores(b, func(b *testing.B, newDB func(testing.TB) string) {
		for _, mode := range []string{"paused", "delivering"} {
			b.Run(mode, func(b *testing.B) {
				bot := startBenchBot(b, newDB(b))
				if mode == "paused" {
					defer bot.outage(b)()
				}
				var total time.Duration
				var lats []time.Duration
				var first, last float64
				iter := 0
				for b.Loop() {
					r := bot.enqueue(b, fmt.Sprintf("enq%d", iter), n)
					total += r.elapsed
					lats = append(lats, r.lat...)
					first += r.rate(0, 1000)
					last += r.rate(n-1000, n)
					iter++
				}
				slices.Sort(lats)
				b.ReportMetric(float64(n*iter)/total.Seconds(), "msgs/s")
				// The backlog grows by n per iteration: how the rate changes with it.
				b.ReportMetric(first/float64(iter), "msgs/s_first1k")
				b.ReportMetric(last/float64(iter), "msgs/s_last1k")
				b.ReportMetric(msOf(pct(lats, 50)), "post_p50_ms")
				b.ReportMetric(msOf(pct(lats, 99)), "post_p99_ms")
			})
		}
	})
}

// BenchmarkQueueDelivery measures delivery to the sandbox while connected:
// 5,000 messages over 100 chats are enqueued as fast as 8 clients can,
// and the clock stops when every contact has decrypted its 50.
func BenchmarkQueueDelivery(b *testing.B) {
	const n = 5000
	benchStores(b, func(b *testing.B, newDB func(testing.TB) string) {
		bot := startBenchBot(b, newDB(b))
		var total, enq, cpu time.Duration
		var commits int64
		iter := 0
		for b.Loop() {
			from := bot.inboxCounts()
			c0 := bot.commits(b)
			start, cpu0 := time.Now(), cpuTime()
			e := bot.enqueue(b, fmt.Sprintf("del%d", iter), n).elapsed
			_, last := bot.waitInboxes(b, 3*time.Minute, from, plus(from, n/benchContacts))
			total += last.Sub(start)
			cpu += cpuTime() - cpu0
			commits += bot.commits(b) - c0
			enq += e
			iter++
		}
		if bot.pg != nil {
			// Enqueue and delivery together, and the benchmark's own reads.
			b.ReportMetric(float64(commits)/float64(n*iter), "commits/msg")
		}
		b.ReportMetric(cpu.Seconds()/total.Seconds(), "cores")
		b.ReportMetric(float64(n*iter)/total.Seconds(), "msgs/s")
		b.ReportMetric(total.Seconds()/float64(iter), "s/5000msgs")
		b.ReportMetric(enq.Seconds()/float64(iter), "enqueue_s")
	})
}

// BenchmarkQueueLatency measures, one message at a time while connected,
// from the start of the POST to (a) the contact's inbox entry (sandbox
// clock, same process) and (b) the bot recording the server's ack
// (sent_at, millisecond precision), over 500 messages to 100 chats.
func BenchmarkQueueLatency(b *testing.B) {
	const n = 500
	benchStores(b, func(b *testing.B, newDB func(testing.TB) string) {
		bot := startBenchBot(b, newDB(b))
		var toInbox, toAck, post []time.Duration
		iter := 0
		for b.Loop() {
			for i := range n {
				ct := bot.contacts[i%len(bot.contacts)]
				before := len(ct.Inbox())
				t0 := time.Now()
				m, err := bot.post(ct.Number(), fmt.Sprintf("lat%d-%d", iter, i))
				if err != nil {
					b.Fatal(err)
				}
				post = append(post, time.Since(t0))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = bot.sb.WaitFor(ctx, func() bool { return len(ct.Inbox()) > before })
				cancel()
				if err != nil {
					b.Fatalf("message %d not delivered: %v", m.ID, err)
				}
				in := ct.Inbox()[before]
				if in.ID != m.WAID {
					b.Fatalf("contact received %s, want %s", in.ID, m.WAID)
				}
				toInbox = append(toInbox, in.Time.Sub(t0))
				var got queued
				bot.waitFor(b, 30*time.Second, "state sent", func() bool {
					got = queued{}
					if bot.get(fmt.Sprintf("/api/v1/messages/%d", m.ID), &got) != http.StatusOK || !sentStates[got.State] {
						time.Sleep(time.Millisecond)
						return false
					}
					return true
				}, nil)
				// sent_at has millisecond precision; t0 is truncated alike.
				toAck = append(toAck, got.SentAt.Sub(t0.Truncate(time.Millisecond)))
			}
			iter++
		}
		for _, s := range [][]time.Duration{toInbox, toAck, post} {
			slices.Sort(s)
		}
		b.ReportMetric(msOf(pct(toAck, 50)), "acked_p50_ms")
		b.ReportMetric(msOf(pct(toAck, 99)), "acked_p99_ms")
		b.ReportMetric(msOf(pct(toInbox, 50)), "inbox_p50_ms")
		b.ReportMetric(msOf(pct(toInbox, 99)), "inbox_p99_ms")
		b.ReportMetric(msOf(pct(post, 50)), "post_p50_ms")
	})
}

// BenchmarkQueueDrain measures the drain of a 10,000-message backlog over
// 100 chats queued during an outage: from the sandbox coming back to the
// last message at its contact, with the production reconnect settings.
func BenchmarkQueueDrain(b *testing.B) {
	const n = 10000
	benchStores(b, func(b *testing.B, newDB func(testing.TB) string) {
		bot := startBenchBot(b, newDB(b))
		var total, reconnect, cpu, enq time.Duration
		var commits int64
		iter := 0
		for b.Loop() {
			end := bot.outage(b)
			from := bot.inboxCounts()
			r := bot.enqueue(b, fmt.Sprintf("drain%d", iter), n)
			enq += r.elapsed
			c0 := bot.commits(b)
			back, cpu0 := time.Now(), cpuTime()
			end()
			first, last := bot.waitInboxes(b, 3*time.Minute, from, plus(from, n/benchContacts))
			cpu += cpuTime() - cpu0
			commits += bot.commits(b) - c0
			total += last.Sub(back)
			reconnect += first.Sub(back)
			iter++
		}
		b.ReportMetric(total.Seconds()/float64(iter), "drain_s")
		b.ReportMetric(cpu.Seconds()/total.Seconds(), "cores")
		b.ReportMetric(float64(n*iter)/total.Seconds(), "msgs/s")
		b.ReportMetric(reconnect.Seconds()/float64(iter), "first_msg_s")
		b.ReportMetric(float64(n*iter)/(total-reconnect).Seconds(), "msgs/s_after_first")
		b.ReportMetric(enq.Seconds()/float64(iter), "enqueue_s")
		if bot.pg != nil {
			b.ReportMetric(float64(commits)/float64(n*iter), "commits/msg")
		}
	})
}
