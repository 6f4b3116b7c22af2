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
	lockActive, lockUntil, refusals          *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.oldest, c.enqueued, c.rejected, c.sends,
		c.failures, c.retries, c.dead, c.handedBack, c.lockActive, c.lockUntil, c.refusals} {
		ch <- d
	}
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
	lock := c.q.ReachoutLock()
	active, until := 0.0, 0.0
	if lock.Active {
		active, until = 1, float64(lock.Until.Unix())
	}
	ch <- prometheus.MustNewConstMetric(c.lockActive, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(c.lockUntil, prometheus.GaugeValue, until)
	ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(lock.Refusals))
}
