package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are this process's counts of what its workers did; depths come
// from the database at scrape time, since other processes change them too.
type counters struct {
	claimed, completed, retried, buried, released atomic.Int64
}

// Lag returns how long the most overdue job that is due and not running
// has waited past its time (0 when none waits): the queue's delay.
func (q *Queue) Lag(ctx context.Context) (time.Duration, error) {
	now := ms(q.now())
	var oldest sql.NullInt64
	if err := q.db.QueryRowContext(ctx, LagSQL(q.t), q.session, now).Scan(&oldest); err != nil {
		return 0, fmt.Errorf("find the oldest due %s job: %w", q.t.Name, err)
	}
	if !oldest.Valid {
		return 0, nil
	}
	return time.Duration(now-oldest.Int64) * time.Millisecond, nil
}

// LagSQL is the statement Lag runs on t (session in $1, now in $2): the
// earliest run_at of a due pending job, and of a running one whose lease
// ran out (its worker died), each read on its own state's rows, so that
// a backlog's pending rows are found by an index of run_at and never read
// one by one (on SQLite a row's later columns may sit behind a large text,
// issue 13, case 7). Exported so a table's owner can check its plan.
func LagSQL(t Table) string {
	due := `SELECT min(run_at) AS t FROM ` + t.Name + ` WHERE session_id = $1 AND state = ` + quote(t.Pending) + ` AND run_at <= $2`
	if t.Running == t.Pending {
		// A running job is a pending row under a live lease.
		due += ` AND COALESCE(lease_until, 0) <= $2`
	} else {
		// A pending row never has a lease (every outcome clears it).
		due += ` UNION ALL SELECT min(run_at) FROM ` + t.Name + ` WHERE session_id = $1 AND state = ` + quote(t.Running) +
			` AND lease_until <= $2`
	}
	return `SELECT min(t) FROM (` + due + `) due`
}

// scrapeTimeout bounds the database queries of one scrape.
const scrapeTimeout = 5 * time.Second

// Collector returns a Prometheus collector of the queues' metrics, each
// labelled with its table's Kind, to register once on the process's
// registry: blacksky_jobs (depth by state), blacksky_jobs_lag_seconds, and
// this process's counts of claims, completions, retries, burials (dead) and
// releases.
func Collector(queues ...*Queue) prometheus.Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("blacksky_jobs"+name, help, append([]string{"kind"}, labels...), nil)
	}
	return &collector{
		queues:    queues,
		depth:     desc("", "Jobs by kind and state.", "state"),
		lag:       desc("_lag_seconds", "How long the most overdue job that is due and not running has waited; 0 when none waits."),
		claimed:   desc("_claimed_total", "Jobs this process claimed (attempts begun)."),
		completed: desc("_completed_total", "Jobs this process completed."),
		retried:   desc("_retried_total", "Failed attempts this process scheduled for another."),
		buried:    desc("_dead_total", "Jobs this process gave up on as dead."),
		released:  desc("_released_total", "Claimed jobs this process gave back unattempted (shutdown)."),
	}
}

type collector struct {
	queues                                                    []*Queue
	depth, lag, claimed, completed, retried, buried, released *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.lag, c.claimed, c.completed, c.retried, c.buried, c.released} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, q := range c.queues {
		kind := q.t.Kind
		if depths, err := q.Depths(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(c.depth, err)
		} else {
			for state, n := range depths {
				ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), kind, state)
			}
		}
		if lag, err := q.Lag(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(c.lag, err)
		} else {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag.Seconds(), kind)
		}
		for d, v := range map[*prometheus.Desc]*atomic.Int64{c.claimed: &q.stats.claimed, c.completed: &q.stats.completed,
			c.retried: &q.stats.retried, c.buried: &q.stats.buried, c.released: &q.stats.released} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()), kind)
		}
	}
}
