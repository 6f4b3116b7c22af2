package main

import (
	"fmt"
	"math"
	"slices"
)

// Phases of a soak run, in order.
const (
	phaseIdle     = "idle"
	phaseLoad     = "load"
	phaseCooldown = "cooldown"
)

// sample is one measurement of the bot process.
type sample struct {
	T          float64 // seconds since the idle phase began
	Phase      string
	RSSMB      float64 // VmRSS from /proc/<pid>/status
	HeapMB     float64 // heap_alloc_mb from /status; NaN when /status did not answer
	SysMB      float64 // sys_mb from /status; NaN when /status did not answer
	Goroutines int     // from /status; -1 when /status did not answer
	Sent       int     // messages WhatsApp took (queue depths sent, undelivered, delivered, read, played)
	Accepted   int     // messages the API accepted (202) so far
	Pending    int     // messages waiting in the queue (pending + sending)
}

// limits are the thresholds of the verdict.
type limits struct {
	RSSGrowthPct    float64 // last third of load vs first third, median RSS, percent
	GoroutineGrowth float64 // last third of load vs first third, median goroutines, absolute
	IdleRSSMB       float64 // idle RSS target; 0 disables the check
}

// verdict is the outcome of a run.
type verdict struct {
	IdleRSS, LoadRSSMedian, LoadRSSMax, CooldownRSS float64
	IdleGoroutines, LoadGoroutines, CooldownGor     float64
	LoadGoroutinesMax                               int
	FirstRSS, LastRSS, FirstGor, LastGor            float64
	Failures                                        []string
}

// cooldownRSSTolerancePct is how far (percent) the cool-down median RSS may
// lie above the load phase's maximum before rule 4 fails.
const cooldownRSSTolerancePct = 5.0

func (v verdict) ok() bool { return len(v.Failures) == 0 }

// median of xs, ignoring NaN; NaN for none.
func median(xs []float64) float64 {
	var s []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func rssOf(ss []sample) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = s.RSSMB
	}
	return out
}

func goroutinesOf(ss []sample) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = math.NaN()
		if s.Goroutines >= 0 {
			out[i] = float64(s.Goroutines)
		}
	}
	return out
}

func inPhase(ss []sample, phase string) []sample {
	var out []sample
	for _, s := range ss {
		if s.Phase == phase {
			out = append(out, s)
		}
	}
	return out
}

// judge applies the growth rules to a run's samples:
//
//  1. load RSS growth: the median RSS of the load phase's last third may
//     exceed that of its first third by at most RSSGrowthPct percent;
//  2. load goroutine growth: likewise for goroutines, by at most
//     GoroutineGrowth;
//  3. goroutines after load: the cool-down median may exceed the idle
//     median by at most GoroutineGrowth (goroutines must not outlive the
//     traffic that started them);
//  4. RSS after load: the cool-down median RSS may exceed the highest RSS
//     seen under load by at most 5 % (memory must not keep rising once
//     traffic stops; staying above idle is allowed, the Go runtime returns
//     freed pages to the OS gradually);
//  5. idle RSS: the idle median must be below IdleRSSMB (when set).
//
// A phase with too few samples fails the run: nothing can be concluded.
func judge(ss []sample, lim limits) verdict {
	var v verdict
	idle, load, cool := inPhase(ss, phaseIdle), inPhase(ss, phaseLoad), inPhase(ss, phaseCooldown)
	if len(idle) < 1 || len(cool) < 1 || len(load) < 3 {
		v.Failures = append(v.Failures, fmt.Sprintf("too few samples to judge (idle %d, load %d, cool-down %d; need 1, 3, 1)", len(idle), len(load), len(cool)))
		return v
	}
	v.IdleRSS = median(rssOf(idle))
	v.LoadRSSMedian = median(rssOf(load))
	v.LoadRSSMax = slices.Max(rssOf(load))
	v.CooldownRSS = median(rssOf(cool))
	v.IdleGoroutines = median(goroutinesOf(idle))
	v.LoadGoroutines = median(goroutinesOf(load))
	v.CooldownGor = median(goroutinesOf(cool))
	for _, s := range load {
		v.LoadGoroutinesMax = max(v.LoadGoroutinesMax, s.Goroutines)
	}
	third := len(load) / 3
	first, last := load[:third], load[len(load)-third:]
	v.FirstRSS, v.LastRSS = median(rssOf(first)), median(rssOf(last))
	v.FirstGor, v.LastGor = median(goroutinesOf(first)), median(goroutinesOf(last))

	if v.LastRSS > v.FirstRSS*(1+lim.RSSGrowthPct/100) {
		v.Failures = append(v.Failures, fmt.Sprintf("RSS kept growing under load: median %.1f MB in the last third vs %.1f MB in the first (limit +%.0f%%)",
			v.LastRSS, v.FirstRSS, lim.RSSGrowthPct))
	}
	if math.IsNaN(v.FirstGor) || math.IsNaN(v.LastGor) || math.IsNaN(v.IdleGoroutines) || math.IsNaN(v.CooldownGor) {
		v.Failures = append(v.Failures, "goroutine counts missing: /status did not answer")
	} else {
		if v.LastGor > v.FirstGor+lim.GoroutineGrowth {
			v.Failures = append(v.Failures, fmt.Sprintf("goroutines kept growing under load: median %.0f in the last third vs %.0f in the first (limit +%.0f)",
				v.LastGor, v.FirstGor, lim.GoroutineGrowth))
		}
		if v.CooldownGor > v.IdleGoroutines+lim.GoroutineGrowth {
			v.Failures = append(v.Failures, fmt.Sprintf("goroutines outlived the load: median %.0f after it vs %.0f before (limit +%.0f)",
				v.CooldownGor, v.IdleGoroutines, lim.GoroutineGrowth))
		}
	}
	if v.CooldownRSS > v.LoadRSSMax*(1+cooldownRSSTolerancePct/100) {
		v.Failures = append(v.Failures, fmt.Sprintf("RSS rose after the load ended: median %.1f MB in the cool-down vs at most %.1f MB under load (limit +5%%)",
			v.CooldownRSS, v.LoadRSSMax))
	}
	if lim.IdleRSSMB > 0 && !(v.IdleRSS < lim.IdleRSSMB) {
		v.Failures = append(v.Failures, fmt.Sprintf("idle RSS %.1f MB is not under %.0f MB", v.IdleRSS, lim.IdleRSSMB))
	}
	return v
}
