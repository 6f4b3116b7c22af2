package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// synth builds a series: idle samples, then load samples from f(i, n), then
// cool-down samples.
func synth(idle, load, cool int, idleRSS float64, idleGor int, f func(i, n int) (rss float64, gor int), coolRSS float64, coolGor int) []sample {
	var ss []sample
	t := 0.0
	add := func(phase string, rss float64, gor int) {
		ss = append(ss, sample{T: t, Phase: phase, RSSMB: rss, HeapMB: 4, SysMB: 15, Goroutines: gor})
		t++
	}
	for range idle {
		add(phaseIdle, idleRSS, idleGor)
	}
	for i := range load {
		rss, gor := f(i, load)
		add(phaseLoad, rss, gor)
	}
	for range cool {
		add(phaseCooldown, coolRSS, coolGor)
	}
	return ss
}

func TestJudge(t *testing.T) {
	lim := limits{RSSGrowthPct: 20, GoroutineGrowth: 25, IdleRSSMB: 40}
	flat := func(i, n int) (float64, int) { return 38, 20 }
	tests := []struct {
		name string
		ss   []sample
		fail []string // substrings of the expected failures; none = pass
	}{
		{"flat", synth(10, 30, 10, 34, 18, flat, 38, 19), nil},
		{"noisy but flat", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			return 38 + float64(i%3), 20 + 10*(i%4) // spikes at reconnects, same in every third
		}, 38, 19), nil},
		{"warm-up then flat", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			return math.Min(34+float64(i), 40), 20
		}, 39, 19), nil},
		{"RSS grows steadily", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			return 38 + float64(i), 20
		}, 60, 19), []string{"RSS kept growing"}},
		{"RSS just under the limit", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			if i >= 20 {
				return 47.9, 20 // +19.7 % over 40
			}
			return 40, 20
		}, 40, 19), nil},
		{"goroutines leak under load", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			return 38, 20 + 2*i
		}, 38, 19), []string{"goroutines kept growing"}},
		{"goroutines outlive the load", synth(10, 30, 10, 34, 18, flat, 38, 50), []string{"goroutines outlived the load"}},
		{"RSS after the load within 5 % of the load's max", synth(10, 30, 10, 34, 18, flat, 39.8, 19), nil},
		{"RSS rises after the load", synth(10, 30, 10, 34, 18, flat, 45, 19), []string{"RSS rose after the load"}},
		{"idle RSS over budget", synth(10, 30, 10, 41, 18, func(i, n int) (float64, int) { return 45, 20 }, 45, 19), []string{"idle RSS 41.0 MB is not under 40 MB"}},
		{"several at once", synth(10, 30, 10, 34, 18, func(i, n int) (float64, int) {
			return 38 + float64(i), 20 + 2*i
		}, 80, 90), []string{"RSS kept growing", "goroutines kept growing", "goroutines outlived", "RSS rose after"}},
		{"missing /status", func() []sample {
			ss := synth(2, 6, 2, 34, 18, flat, 38, 19)
			for i := range ss {
				ss[i].Goroutines = -1
			}
			return ss
		}(), []string{"goroutine counts missing"}},
		{"too few samples", synth(1, 2, 1, 34, 18, flat, 38, 19), []string{"too few samples"}},
		{"no cool-down", synth(5, 10, 0, 34, 18, flat, 38, 19), []string{"too few samples"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.ss, lim)
			if len(v.Failures) != len(tt.fail) {
				t.Fatalf("failures = %q, want %d matching %q", v.Failures, len(tt.fail), tt.fail)
			}
			for i, want := range tt.fail {
				if !strings.Contains(v.Failures[i], want) {
					t.Errorf("failure %d = %q, want it to mention %q", i, v.Failures[i], want)
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{math.NaN(), 5, math.NaN()}, 5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := median([]float64{math.NaN()}); !math.IsNaN(got) {
		t.Errorf("median of nothing = %v, want NaN", got)
	}
}

func TestBadFlagsOneLineExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--rate", "fast"},
		{"--rate", "5/d"},
		{"--interval", "1ms"},
		{"--duration", "2s"},
		{"--contacts", "0"},
		{"--nope"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		if code != exitUsage || strings.Count(errOut.String(), "\n") != 1 || !strings.HasPrefix(errOut.String(), "blacksky-soak: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, errOut.String())
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"50/s": 50, "50": 50, "300/m": 5, "3600/h": 1, "0": 0} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestFaultSchedule(t *testing.T) {
	var kinds []string
	for i := range 10 {
		kinds = append(kinds, faultKind(i))
	}
	want := "drop drop drop drop restart drop stream_503 drop drop restart"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("faults = %s, want %s", got, want)
	}
}

// The whole thing, short: build, sandbox, bot, pair, idle, load with
// faults, cool-down, CSV and PNG.
func TestSoakEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bot for about 20 s")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"--duration", "15s", "--idle", "3s", "--interval", "500ms", "--rate", "20/s",
		"--contact-rate", "2/s", "--drop-every", "4s", "--contacts", "3", "--out", out}, &stdout, &stderr)
	t.Logf("exit %d after %s\n%s%s", code, time.Since(start).Round(time.Second), stdout.String(), stderr.String())
	// A 9 s load is too short for the growth verdict to mean much (warm-up
	// weighs on it); the verdict itself is tested above on synthetic series.
	if code != exitOK && code != exitFail {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "verdict: ") || !strings.Contains(stdout.String(), "idle RSS (median)") {
		t.Fatalf("no verdict or idle RSS in the report")
	}
	f, err := os.Open(filepath.Join(out, "soak.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 20 || strings.Join(rows[0][:7], ",") != "time_s,phase,rss_mb,heap_mb,sys_mb,goroutines,sent" {
		t.Fatalf("CSV has %d rows, header %v", len(rows), rows[0])
	}
	phases := map[string]int{}
	sent := 0
	for _, r := range rows[1:] {
		phases[r[1]]++
		if rss, err := strconv.ParseFloat(r[2], 64); err != nil || rss <= 0 {
			t.Errorf("row %v: bad RSS", r)
		}
		if n, err := strconv.Atoi(r[6]); err == nil {
			sent = max(sent, n)
		}
	}
	if phases[phaseIdle] == 0 || phases[phaseLoad] == 0 || phases[phaseCooldown] == 0 {
		t.Errorf("phases in the CSV: %v", phases)
	}
	if sent < 50 {
		t.Errorf("only %d messages sent", sent)
	}
	if st, err := os.Stat(filepath.Join(out, "soak.png")); err != nil || st.Size() < 1000 {
		t.Errorf("no plot: %v", err)
	}
}
