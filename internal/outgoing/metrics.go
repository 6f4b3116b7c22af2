package outgoing

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a message goes to dead, as metric labels.
const (
	reasonPermanent   = "permanent"
	reasonMaxAttempts = "max_attempts"
	reasonExpired     = "expired"
)

// counters are this process's event counts; depths come from the database
// at scrape time, since other processes change them too.
type counters struct {
	enqueued, rejected       atomic.Int64
	sends, failures, retries atomic.Int64
	deadPermanent, deadMax   atomic.Int64
	deadExpired, handedBack  atomic.Int64
	// The steps after sent this process recorded (receipts.go, watchdog.go).
	undelivered, delivered, read, played atomic.Int64
	resent                               atomic.Int64
	// toDelivered is sent to delivered, toRead delivered to read.
	toDelivered, toRead prometheus.Histogram
}

// receiptBuckets span a recipient online now (a second) to one whose phone
// was off for a day.
var receiptBuckets = []float64{0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// initHistograms makes the histograms of c.
func (c *counters) initHistograms() {
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: "blacksky_outbox_" + name, Help: help, Buckets: receiptBuckets})
	}
	c.toDelivered = h("sent_to_delivered_seconds", "Time from WhatsApp's ack of a message to its first delivery receipt, for receipts this process recorded.")
	c.toRead = h("delivered_to_read_seconds", "Time from a message's delivery to its read receipt, for receipts this process recorded.")
}

// observeSteps counts the steps after sent that committed.
func (q *Queue) observeSteps(steps []Message) {
	c := &q.stats
	for _, m := range steps {
		switch m.State {
		case Undelivered:
			c.undelivered.Add(1)
		case Delivered:
			c.delivered.Add(1)
			c.toDelivered.Observe(max(m.DeliveredAt.Sub(m.SentAt), 0).Seconds())
		case Read:
			c.read.Add(1)
			c.toRead.Observe(max(m.ReadAt.Sub(m.DeliveredAt), 0).Seconds())
		case Played:
			c.played.Add(1)
		}
	}
}

func (c *counters) dead(reason string, n int) {
	switch reason {
	case reasonPermanent:
		c.deadPermanent.Add(int64(n))
	case reasonMaxAttempts:
		c.deadMax.Add(int64(n))
	case reasonExpired:
		c.deadExpired.Add(int64(n))
	}
}

// scrapeTimeout bounds the database queries one scrape makes.
const scrapeTimeout = 5 * time.Second

// Collector returns a Prometheus collector of the queue's metrics, to
// register on the process's registry. Depths and the oldest pending age are
// read from the database at scrape time.
func (q *Queue) Collector() prometheus.Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("blacksky_outbox_"+name, help, labels, nil)
	}
	return &collector{
		q:          q,
		depth:      desc("messages", "Outgoing messages by state.", "state"),
		oldest:     desc("oldest_pending_age_seconds", "Age of the oldest message waiting to be sent; 0 when none waits."),
		enqueued:   desc("enqueued_total", "Messages accepted into the outgoing queue by this process."),
		rejected:   desc("rejected_total", "Enqueues refused because the backlog was full."),
		sends:      desc("sends_total", "Messages this process delivered to WhatsApp."),
		failures:   desc("send_failures_total", "Send attempts by this process that failed."),
		retries:    desc("retries_total", "Failed sends this process scheduled for another attempt."),
		dead:       desc("dead_total", "Messages this process gave up on, by reason.", "reason"),
		handedBack: desc("handed_back_total", "Claimed messages returned unsent (shutdown, connection lost)."),
		steps:      desc("receipt_steps_total", "Sent messages this process recorded as undelivered (the watchdog), delivered, read or played.", "state"),
		resent:     desc("resent_total", "Undelivered messages sent again under their ID after the recipient's identity changed."),
		lockActive: prometheus.NewDesc("blacksky_reachout_lock_active",
			"1 while WhatsApp's reach-out lock holds messages to contacts who have not written (error 463), else 0.", nil, nil),
		lockUntil: prometheus.NewDesc("blacksky_reachout_lock_until_seconds",
			"Unix time the reach-out lock ends (announced by WhatsApp or assumed); 0 when none is in force.", nil, nil),
		refusals: prometheus.NewDesc("blacksky_reachout_refusals_total",
			"Messages WhatsApp refused to this process with error 463 (reach-out lock).", nil, nil),
	}
}

type collector struct {
	q                                        *Queue
	depth, oldest, enqueued, rejected, sends *prometheus.Desc
	failures, retries, dead, handedBack      *prometheus.Desc
	steps, resent                            *prometheus.Desc
	lockActive, lockUntil, refusals          *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.oldest, c.enqueued, c.rejected, c.sends,
		c.failures, c.retries, c.dead, c.handedBack, c.steps, c.resent, c.lockActive, c.lockUntil, c.refusals} {
		ch <- d
	}
	c.q.stats.toDelivered.Describe(ch)
	c.q.stats.toRead.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if depths, err := c.q.Depths(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
	} else {
		for _, s := range States() {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(depths[s]), string(s))
		}
	}
	if age, err := c.q.OldestPendingAge(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.oldest, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds())
	}
	s := &c.q.stats
	counter := func(d *prometheus.Desc, v *atomic.Int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()), labels...)
	}
	counter(c.enqueued, &s.enqueued)
	counter(c.rejected, &s.rejected)
	counter(c.sends, &s.sends)
	counter(c.failures, &s.failures)
	counter(c.retries, &s.retries)
	counter(c.dead, &s.deadPermanent, reasonPermanent)
	counter(c.dead, &s.deadMax, reasonMaxAttempts)
	counter(c.dead, &s.deadExpired, reasonExpired)
	counter(c.handedBack, &s.handedBack)
	counter(c.steps, &s.undelivered, string(Undelivered))
	counter(c.steps, &s.delivered, string(Delivered))
	counter(c.steps, &s.read, string(Read))
	counter(c.steps, &s.played, string(Played))
	counter(c.resent, &s.resent)
	s.toDelivered.Collect(ch)
	s.toRead.Collect(ch)
	lock := c.q.ReachoutLock()
	active, until := 0.0, 0.0
	if lock.Active {
		active, until = 1, float64(lock.Until.Unix())
	}
	ch <- prometheus.MustNewConstMetric(c.lockActive, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(c.lockUntil, prometheus.GaugeValue, until)
	ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(lock.Refusals))
}
