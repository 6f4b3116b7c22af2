package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testdb"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// bins are the blacksky and blacksky-sandbox binaries, built once for the
// short chaos runs.
var bins testkit.Binaries

func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithBinaries(m, &bins))
}

// The short chaos run CI does: half a minute of every fault, kills, restarts
// and fail-overs between two bots, on SQLite and on PostgreSQL. Nothing may
// be lost, duplicated or reordered, and every action must have happened.
func TestShortChaosRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about 40 s per store")
	}
	stores := map[string]func(*testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return testdb.PostgresURL(t) },
	}
	for name, dbURL := range stores {
		t.Run(name, func(t *testing.T) {
			cfg := config{
				duration: 30 * time.Second, store: name, contacts: 10, rate: 20, seed: time.Now().UnixNano(),
				binary: bins.Blacksky, sandbox: bins.Sandbox, interval: 700 * time.Millisecond, drain: time.Minute,
			}
			if name == "postgres" {
				// chaosRun makes its own database on this server; testdb's
				// (dropped at the end) serves as the admin connection.
				cfg.pgURL = dbURL(t)
			}
			var log bytes.Buffer
			rep, err := chaosRun(context.Background(), cfg, &log)
			if err != nil {
				t.Fatalf("chaos run: %v\n%s", err, log.String())
			}
			var out bytes.Buffer
			rep.print(&out)
			t.Logf("seed %d\n%s", cfg.seed, out.String())
			if !rep.OK() || rep.Sent == 0 || rep.Delivered+rep.Dead+rep.NotOnWhatsApp != rep.Sent || rep.NotOnWhatsApp == 0 || rep.Migrations == 0 {
				t.Errorf("sent %d, delivered %d, dead %d, lost %d, duplicated %d, out of order %d\n%s",
					rep.Sent, rep.Delivered, rep.Dead, rep.Lost, rep.Duplicated, rep.OutOfOrder, log.String())
			}
			for action, n := range rep.Actions {
				if n == 0 {
					t.Errorf("chaos action %q never happened", action)
				}
			}
			if rep.LeaderChanges == 0 {
				t.Error("the account never moved between the two bots")
			}
		})
	}
}

// The checker itself: each kind of damage is counted as what it is.
func TestCheckerCountsDamage(t *testing.T) {
	at := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	sent := func(seq int, waid string) sentMsg {
		return sentMsg{Contact: "c", Seq: seq, Text: fmt.Sprintf("t%d", seq), WAID: waid, EnqueuedAt: at}
	}
	byText := map[string]sentMsg{}
	for _, m := range []sentMsg{sent(1, "A"), sent(2, "B"), sent(3, "C"), sent(4, "D")} {
		byText[m.Text] = m
	}
	in := []inboxMsg{
		{ID: "A", Text: "t1", Time: at.Add(time.Second)},
		{ID: "C", Text: "t3", Time: at.Add(2 * time.Second)},
		{ID: "A", Text: "t1", Time: at.Add(3 * time.Second)},   // resend, same ID
		{ID: "B", Text: "t2", Time: at.Add(4 * time.Second)},   // after #3: out of order
		{ID: "X", Text: "t2", Time: at.Add(5 * time.Second)},   // same text, new ID: duplicate
		{ID: "Y", Text: "who?", Time: at.Add(6 * time.Second)}, // nobody sent it
		{ID: "Z", Text: "late", Time: at.Add(7 * time.Second)}, // POST unanswered at the end
	}
	r := &Report{}
	arrived := map[string]bool{}
	r.waits(r.contact("c", in, byText, map[string]bool{"late": true}, arrived))
	got := fmt.Sprintf("delivered %d resends %d out-of-order %d duplicated %d strangers %d longest %s",
		r.Delivered, r.Resends, r.OutOfOrder, r.Duplicated, r.Strangers, r.LongestWait)
	want := "delivered 3 resends 1 out-of-order 1 duplicated 1 strangers 1 longest 4s"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if arrived["D"] {
		t.Error("t4 never arrived but counts as arrived")
	}
	if r.OK() {
		t.Error("a report with damage says OK")
	}
}

func TestBadFlagsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--store", "mysql"},
		{"--rate", "fast"},
		{"--duration", "-1s"},
		{"--store", "postgres", "--postgres-url", ""},
		{"--restart-postgres"},
		{"--nope"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), args, io.Discard, &stderr)
		if code != exitUsage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, stderr.String())
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"20": 20, "20/s": 20, "600/m": 10, "0.5/s": 0.5} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
