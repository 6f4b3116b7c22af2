package cli

// BenchmarkQueueVersusDirect: the same messages through blacksky's durable
// queue and sent directly by a plain whatsmeow client, in one run, against
// one in-process sandbox and the same 50 contacts. docs/QUEUE.md, "Queue
// versus sending directly", has the figures. Run with
//
//	BLACKSKY_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres \
//	go test -run XXX -bench QueueVersusDirect -benchtime=1x ./internal/cli/

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
)

const (
	vsChats  = 50 // the chats both sides send to
	vsBurstN = 500
	// vsBurstSenders is how many concurrent callers take the burst on each
	// side: 10 goroutines calling SendMessage, or 10 HTTP clients POSTing.
	vsBurstSenders = 10
	// vsSteadySenders is how many concurrent callers take the steady load
	// on each side: as many as the queue has workers (the bot runs the
	// default), so that both may have as many sends in flight at once.
	vsSteadySenders = outgoing.DefaultWorkers
)

// link is where the sandbox is, as seen from both sides, and the
// steady load offered over it (below what 16 callers can carry there).
type link struct {
	name string
	// rtt is the round trip to the server (sandbox.Options.Latency). Over
	// loopback an ack comes 1-2 ms after a send; WhatsApp's takes about
	// 200-300 ms (whatsmeow issue #1077, 2026-09-07).
	rtt time.Duration
	// every is the steady load's spacing: 100 a second over loopback; 50
	// a second at 200 ms, where 16 callers can carry at most 80.
	every  time.Duration
	steady int // messages of the steady load: 10 s of it
}

var links = []link{
	{name: "loopback", every: 10 * time.Millisecond, steady: 1000},
	{name: "rtt200ms", rtt: 200 * time.Millisecond, every: 20 * time.Millisecond, steady: 500},
}

// offer is message i, offered at at: latency counts from there, so a
// message that waits for a free caller is charged for the wait.
type offer struct {
	i  int
	at time.Time
}

// offerPaced offers n messages, the i-th at start + i*every whether or not
// earlier ones are done (an open loop); every 0 offers all at once.
func offerPaced(n int, every time.Duration) <-chan offer {
	ch := make(chan offer, n)
	start := time.Now()
	go func() {
		defer close(ch)
		for i := range n {
			at := start.Add(time.Duration(i) * every)
			time.Sleep(time.Until(at)) // pacing the load, not synchronisation
			ch <- offer{i, at}
		}
	}()
	return ch
}

// sent names a message as sent: its WhatsApp ID and, through the queue,
// the queue's ID.
type sent struct {
	waID string
	qid  int64
	// encrypt is, for the direct peer, whatsmeow's own timing of the
	// encryption step, which holds its send lock and reads and writes the
	// Signal store: one sender at a time, so 1/encrypt bounds its rate.
	encrypt time.Duration
}

// sendFunc sends message i.
type sendFunc func(i int) (sent, error)

// outcome is one message's clock readings.
type outcome struct {
	sent
	offered  time.Time
	returned time.Time // the send returned: SendMessage on the ack, a POST on the durable enqueue
	// acked is when the server's ack came back: returned for the direct
	// peer; sent_at through the queue (fillAcks).
	acked time.Time
	// coarse: acked has millisecond precision (sent_at).
	coarse bool
	inbox  time.Time // the contact decrypted it (sandbox clock, this process)
}

// toAck is the offer-to-ack latency; against a millisecond clock the offer
// time is cut alike.
func (o outcome) toAck() time.Duration {
	if o.coarse {
		return o.acked.Sub(o.offered.Truncate(time.Millisecond))
	}
	return o.acked.Sub(o.offered)
}

func (o outcome) toInbox() time.Duration  { return o.inbox.Sub(o.offered) }
func (o outcome) toReturn() time.Duration { return o.returned.Sub(o.offered) }

// drive has callers goroutines take the offers of src and send them, and
// returns the outcomes in offer order.
func drive(b *testing.B, src <-chan offer, n, callers int, send sendFunc) []outcome {
	b.Helper()
	out := make([]outcome, n)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for o := range src {
				s, err := send(o.i)
				if err != nil {
					errs <- fmt.Errorf("message %d: %w", o.i, err)
					return
				}
				now := time.Now()
				out[o.i] = outcome{sent: s, offered: o.at, returned: now, acked: now}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return out
}

// fillInbox waits until every message has reached its contact and records
// when. It polls (the arrival times are the sandbox's own): re-reading every
// inbox on each sandbox event would load the CPU while the queue delivers
// and not while the direct peer does, whose sends have all arrived by then.
func (bot *benchBot) fillInbox(b *testing.B, out []outcome) {
	b.Helper()
	byID := make(map[string]*outcome, len(out))
	for i := range out {
		byID[out[i].waID] = &out[i]
	}
	bot.waitFor(b, time.Minute, fmt.Sprintf("%d messages at their contacts", len(out)), func() bool {
		seen := 0
		for _, ct := range bot.contacts {
			for _, m := range ct.Inbox() {
				if o := byID[m.ID]; o != nil {
					o.inbox, seen = m.Time, seen+1
				}
			}
		}
		return seen == len(out)
	}, nil)
}

// fillAcks waits until the bot has recorded every message as sent and
// takes its sent_at: the bot's clock when the server's ack came back, read
// right after whatsmeow's SendMessage returned (outbox markSent).
func (bot *benchBot) fillAcks(b *testing.B, out []outcome) {
	b.Helper()
	byID := make(map[int64]*outcome, len(out))
	oldest := out[0].qid
	for i := range out {
		byID[out[i].qid] = &out[i]
		oldest = min(oldest, out[i].qid)
	}
	bot.waitFor(b, time.Minute, "every message sent", func() bool {
		return bot.readSentAt(byID, oldest) == len(out)
	}, nil)
}

// readSentAt fills acked for the messages of byID that are sent, reading
// the queue newest first down to id oldest, and counts them.
func (bot *benchBot) readSentAt(byID map[int64]*outcome, oldest int64) int {
	n := 0
	path := "/api/v1/messages?limit=1000"
	for {
		var page struct {
			Messages   []queued `json:"messages"`
			NextBefore int64    `json:"next_before"`
		}
		if bot.get(path, &page) != http.StatusOK {
			return -1
		}
		for _, m := range page.Messages {
			if o := byID[m.ID]; o != nil && sentStates[m.State] {
				o.acked, o.coarse, n = m.SentAt, true, n+1
			}
		}
		if page.NextBefore == 0 || page.NextBefore <= oldest {
			return n
		}
		path = "/api/v1/messages?limit=1000&before=" + strconv.FormatInt(page.NextBefore, 10)
	}
}

// versus is the two sides and the chats they send to.
type versus struct {
	bot    *benchBot // a view of the bot whose contacts are the chats
	direct *whatsmeow.Client
	chats  []*sandbox.Contact
}

// sideFunc sends n offers from src through one side with that many callers.
type sideFunc func(b *testing.B, src <-chan offer, n, callers int, prefix string) []outcome

func (v *versus) sides() [2]sideFunc { return [2]sideFunc{v.viaQueue, v.viaDirect} }

var sideNames = [2]string{"queue", "direct"}

// viaQueue POSTs each message to the bot's API and returns once every one
// is delivered and recorded as sent.
func (v *versus) viaQueue(b *testing.B, src <-chan offer, n, callers int, prefix string) []outcome {
	out := drive(b, src, n, callers, func(i int) (sent, error) {
		m, err := v.bot.post(v.chats[i%len(v.chats)].Number(), fmt.Sprintf("%s-q%d", prefix, i))
		return sent{waID: m.WAID, qid: m.ID}, err
	})
	v.bot.fillInbox(b, out)
	v.bot.fillAcks(b, out)
	return out
}

// viaDirect sends each message with the direct peer's SendMessage.
func (v *versus) viaDirect(b *testing.B, src <-chan offer, n, callers int, prefix string) []outcome {
	out := drive(b, src, n, callers, func(i int) (sent, error) {
		to := types.NewJID(v.chats[i%len(v.chats)].Number(), types.DefaultUserServer)
		text := fmt.Sprintf("%s-d%d", prefix, i)
		resp, err := v.direct.SendMessage(context.Background(), to, &waE2E.Message{Conversation: proto.String(text)})
		return sent{waID: resp.ID, encrypt: resp.DebugTimings.PeerEncrypt}, err
	})
	v.bot.fillInbox(b, out)
	return out
}

// openDirectStore is the direct peer's whatsmeow store: its own database
// on the bot's engine, with the pragmas the bot's store uses on SQLite.
func openDirectStore(b *testing.B, databaseURL string) *sqlstore.Container {
	b.Helper()
	driver, dialect, dsn := "pgx", "postgres", databaseURL
	if databaseURL == "" {
		driver, dialect = "sqlite", "sqlite3"
		dsn = "file:" + filepath.Join(b.TempDir(), "direct.db") + "?_pragma=busy_timeout(10000)" +
			"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatalf("open the direct peer's store: %v", err)
	}
	c := sqlstore.NewWithDB(db, dialect, waLog.Noop)
	if err := c.Upgrade(context.Background()); err != nil {
		b.Fatalf("upgrade the direct peer's store: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// pairDirect links a plain whatsmeow client as a second device of the
// sandbox's account, by QR as a user would, and waits until it is logged
// in and has uploaded its prekeys (the bot encrypts a copy for it).
func pairDirect(b *testing.B, sb *sandbox.Server, databaseURL string) *whatsmeow.Client {
	b.Helper()
	cli := whatsmeow.NewClient(openDirectStore(b, databaseURL).NewDevice(), waLog.Noop)
	if err := sb.Trust().Apply(cli); err != nil {
		b.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	cli.AddEventHandler(func(e any) {
		if _, ok := e.(*events.Connected); ok {
			select {
			case connected <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b.Cleanup(cancel)
	qrs, err := cli.GetQRChannel(ctx)
	if err == nil {
		err = cli.Connect()
	}
	if err != nil {
		b.Fatalf("connect the direct peer: %v", err)
	}
	b.Cleanup(cli.Disconnect)
	since := sb.LastSeq()
	scanFirstQR(b, ctx, sb, qrs)
	select {
	case <-connected:
	case <-ctx.Done():
		b.Fatal("the direct peer did not log in within 30 s")
	}
	waitPreKeys(b, ctx, sb, cli.Store.ID.String(), since)
	return cli
}

func scanFirstQR(b *testing.B, ctx context.Context, sb *sandbox.Server, qrs <-chan whatsmeow.QRChannelItem) {
	b.Helper()
	select {
	case item := <-qrs:
		if item.Event != "code" {
			b.Fatalf("the direct peer's first QR item: %+v", item)
		}
		if err := sb.ScanQR(ctx, item.Code); err != nil {
			b.Fatalf("scan the direct peer's QR: %v", err)
		}
	case <-ctx.Done():
		b.Fatal("the direct peer got no QR code")
	}
}

func waitPreKeys(b *testing.B, ctx context.Context, sb *sandbox.Server, jid string, since uint64) {
	b.Helper()
	err := sb.WaitFor(ctx, func() bool {
		return slices.ContainsFunc(sb.Events(), func(e sandbox.Event) bool {
			return e.Seq > since && e.Kind == sandbox.EventPreKeysUploaded && e.JID == jid
		})
	})
	if err != nil {
		b.Fatalf("the direct peer uploaded no prekeys: %v", err)
	}
}

// startVersus starts the bot and the direct peer, each on its own database
// of the store under test, and sends one message to every chat from each,
// so that sessions, device lists and LIDs are known before anything is timed.
func startVersus(b *testing.B, newDB func(testing.TB) string, rtt time.Duration) *versus {
	b.Helper()
	bot := startBenchBotOn(b, newDB(b), rtt)
	direct := pairDirect(b, bot.sb, newDB(b))
	view := *bot
	view.contacts = bot.contacts[:vsChats]
	v := &versus{bot: &view, direct: direct, chats: view.contacts}
	for s, side := range v.sides() {
		side(b, offerPaced(vsChats, 0), vsChats, vsBurstSenders, "warm"+sideNames[s])
	}
	return v
}

// alternate runs both sides once per iteration, each starting every other
// iteration, and returns every outcome of each side.
func (v *versus) alternate(b *testing.B, run func(side sideFunc, prefix string) []outcome) [2][]outcome {
	var all [2][]outcome
	iter := 0
	for b.Loop() {
		for k := range 2 {
			s := (k + iter) % 2
			all[s] = append(all[s], run(v.sides()[s], fmt.Sprintf("%s%d", sideNames[s], iter))...)
		}
		iter++
	}
	return all
}

// BenchmarkQueueVersusDirect compares blacksky's queue with a plain
// whatsmeow client sending directly (a second linked device of the same
// account), rate limits off, both on the store under test, over each
// link (loopback, and WhatsApp's round trip). "steady": a load offered
// for 10 s over 50 chats to 16 callers on each side (POST; SendMessage),
// latency from the offer to the server's ack and to the contact's inbox.
// "burst": 500 messages offered at once to 10 callers on each side, time
// from the offer to the last ack and inbox.
func BenchmarkQueueVersusDirect(b *testing.B) {
	benchStores(b, func(b *testing.B, newDB func(testing.TB) string) {
		for _, n := range links {
			b.Run(n.name, func(b *testing.B) {
				v := startVersus(b, newDB, n.rtt)
				b.Run("steady", func(b *testing.B) { v.benchSteady(b, n) })
				b.Run("burst", v.benchBurst)
			})
		}
	})
}

func (v *versus) benchSteady(b *testing.B, n link) {
	all := v.alternate(b, func(side sideFunc, prefix string) []outcome {
		return side(b, offerPaced(n.steady, n.every), n.steady, vsSteadySenders, prefix)
	})
	var ack, inbox [2][]time.Duration
	for s, out := range all {
		ack[s], inbox[s] = sortedLags(out, outcome.toAck), sortedLags(out, outcome.toInbox)
		name := sideNames[s]
		b.ReportMetric(msOf(pct(ack[s], 50)), name+"_ack_p50_ms")
		b.ReportMetric(msOf(pct(ack[s], 99)), name+"_ack_p99_ms")
		b.ReportMetric(msOf(pct(inbox[s], 50)), name+"_inbox_p50_ms")
		b.ReportMetric(msOf(pct(inbox[s], 99)), name+"_inbox_p99_ms")
	}
	// Of the queue's latency, the part until the POST has its 202.
	post := sortedLags(all[0], outcome.toReturn)
	b.ReportMetric(msOf(pct(post, 50)), "queue_post_p50_ms")
	b.ReportMetric(msOf(pct(post, 99)), "queue_post_p99_ms")
	reportEncrypt(b, all[1])
	for _, p := range []int{50, 99} {
		b.ReportMetric(msOf(pct(ack[0], p))/msOf(pct(ack[1], p)), fmt.Sprintf("ack_p%d_ratio", p))
		// The same on the sandbox's clock, to the nanosecond: a contact has
		// its copy a decryption (the phone's copy) before the server writes
		// the ack, on both sides alike.
		b.ReportMetric(msOf(pct(inbox[0], p))/msOf(pct(inbox[1], p)), fmt.Sprintf("inbox_p%d_ratio", p))
	}
}

func (v *versus) benchBurst(b *testing.B) {
	all := v.alternate(b, func(side sideFunc, prefix string) []outcome {
		return side(b, offerPaced(vsBurstN, 0), vsBurstN, vsBurstSenders, prefix)
	})
	var toAck [2]time.Duration
	for s, out := range all {
		var toInbox, returned time.Duration
		for i := 0; i < len(out); i += vsBurstN {
			burst := out[i : i+vsBurstN]
			toAck[s] += slices.Max(sortedLags(burst, outcome.toAck))
			toInbox += slices.Max(sortedLags(burst, outcome.toInbox))
			returned += slices.Max(sortedLags(burst, outcome.toReturn))
		}
		n := float64(len(out) / vsBurstN)
		b.ReportMetric(toAck[s].Seconds()/n, sideNames[s]+"_ack_s")
		b.ReportMetric(toInbox.Seconds()/n, sideNames[s]+"_inbox_s")
		// The queue's callers are done when the burst is durably queued.
		b.ReportMetric(returned.Seconds()/n, sideNames[s]+"_callers_s")
	}
	reportEncrypt(b, all[1])
	b.ReportMetric(toAck[0].Seconds()/toAck[1].Seconds(), "ack_s_ratio")
}

// reportEncrypt reports the direct peer's mean encryption time.
func reportEncrypt(b *testing.B, direct []outcome) {
	var sum time.Duration
	for _, o := range direct {
		sum += o.encrypt
	}
	b.ReportMetric(msOf(sum/time.Duration(len(direct))), "direct_encrypt_ms")
}

// sortedLags is lag of every outcome, sorted.
func sortedLags(out []outcome, lag func(outcome) time.Duration) []time.Duration {
	d := make([]time.Duration, len(out))
	for i, o := range out {
		d[i] = lag(o)
	}
	slices.Sort(d)
	return d
}
