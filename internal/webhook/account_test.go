package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// storedEvent is one row of the events table, its body decoded.
type storedEvent struct {
	ID, Kind string
	Data     map[string]any
}

// storedEvents lists the session's events in the order they were stored.
func storedEvents(t *testing.T, st *store.Store) []storedEvent {
	t.Helper()
	rows, err := st.DB().Query(`SELECT event_id, kind, body FROM blacksky_webhook WHERE session_id = 's' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		var body string
		if err := rows.Scan(&e.ID, &e.Kind, &body); err != nil {
			t.Fatal(err)
		}
		var env struct {
			ID   string         `json:"id"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &env); err != nil || env.ID != e.ID {
			t.Fatalf("body %s of %s: %v", body, e.ID, err)
		}
		e.Data = env.Data
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitStored waits until the newest stored event is of kind with
// data[key] == value; the events are stored in order, so all reported
// before it are stored too.
func waitStored(t *testing.T, st *store.Store, kind, key, value string) []storedEvent {
	t.Helper()
	var evs []storedEvent
	eventually(t, func(context.Context) (bool, string) {
		evs = storedEvents(t, st)
		if n := len(evs); n > 0 && evs[n-1].Kind == kind && evs[n-1].Data[key] == value {
			return true, ""
		}
		return false, fmt.Sprintf("stored %+v, want the last a %s with %s %q", evs, kind, key, value)
	})
	return evs
}

func runAccountEvents(t *testing.T, a *AccountEvents) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func kinds(evs []storedEvent) string {
	var ks []string
	for _, e := range evs {
		k := e.Kind
		if s, ok := e.Data["state"].(string); ok {
			k += ":" + s
		}
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}

// A pairing and what follows become events in the order they happened, one
// per change: a report that repeats the state and reason, or the QR code,
// is none; a new reason, QR code or pairing code is one; logging out is
// both a state and account.logged_out.
func TestAccountEventsOnePerChange(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			a := newClient(t, st, "https://example.invalid/hook", nil).AccountEvents(0)
			runAccountEvents(t, a)
			t0 := time.Now().Truncate(time.Millisecond)
			at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
			const jid = "15550000001:3@s.whatsapp.net"

			a.State(AccountState{State: "connecting", Reason: "dialing WhatsApp", Time: at(0)})
			a.State(AccountState{State: "connecting", Reason: "dialing WhatsApp", Time: at(0)})
			a.State(AccountState{State: "connecting", Reason: "dialing WhatsApp", Degraded: "suspect", Time: at(0)})
			a.Pairing(AccountPairing{QR: "2@first", QRExpires: at(60000)})
			a.Pairing(AccountPairing{QR: "2@first", QRExpires: at(60000)})
			a.State(AccountState{State: "unpaired", Reason: "waiting for the QR code to be scanned", Time: at(1)})
			a.Pairing(AccountPairing{QR: "2@second", QRExpires: at(80000)})
			a.Pairing(AccountPairing{QR: "2@second", QRExpires: at(80000), Code: "ABCD-EFGH", CodePhone: "15550000001"})
			a.Pairing(AccountPairing{Paired: true, Account: jid})
			a.State(AccountState{State: "connecting", Reason: "paired; logging in", Account: jid, Time: at(2)})
			a.State(AccountState{State: "connected", Reason: "logged in", Account: jid, Time: at(3)})
			a.State(AccountState{State: "logged_out", Reason: "logged out: 401", Time: at(4)})

			evs := waitStored(t, st, KindAccountLoggedOut, "reason", "logged out: 401")
			want := "account.state:connecting account.qr account.state:unpaired account.qr account.pair_code account.paired " +
				"account.state:connecting account.state:connected account.state:logged_out account.logged_out"
			if got := kinds(evs); got != want {
				t.Fatalf("events\n %s\nwant\n %s", got, want)
			}
			if d := evs[1].Data; d["qr"] != "2@first" || d["expires"] != at(60000).UTC().Format(time.RFC3339Nano) {
				t.Errorf("account.qr data %v, want the first code and its expiry", d)
			}
			if d := evs[4].Data; d["code"] != "ABCD-EFGH" || d["phone"] != "15550000001" {
				t.Errorf("account.pair_code data %v", d)
			}
			if d := evs[5].Data; d["account"] != jid {
				t.Errorf("account.paired data %v", d)
			}
			if d := evs[7].Data; d["reason"] != "logged in" || d["account"] != jid || d["time"] != at(3).UTC().Format(time.RFC3339Nano) {
				t.Errorf("account.state data %v, want the reason, account and time of the change", d)
			}
			seen := map[string]bool{}
			for _, e := range evs {
				if seen[e.ID] {
					t.Errorf("event ID %s twice", e.ID)
				}
				seen[e.ID] = true
				if strings.Contains(e.ID, "2@") || strings.Contains(e.ID, "ABCD") {
					t.Errorf("event ID %s carries a secret", e.ID)
				}
			}
		})
	}
}

// An account paired before it was watched is not reported as newly paired
// by its first report; becoming paired again after a logout is.
func TestAccountPairedOnlyAfterUnpaired(t *testing.T) {
	st := openStore(t, store.SQLite)
	a := newClient(t, st, "https://example.invalid/hook", nil).AccountEvents(0)
	runAccountEvents(t, a)
	a.Pairing(AccountPairing{Paired: true, Account: "old@s.whatsapp.net", CodePhone: "1555"})
	a.Pairing(AccountPairing{Paired: true, Account: "old@s.whatsapp.net"})
	a.Pairing(AccountPairing{})
	a.Pairing(AccountPairing{Paired: true, Account: "new@s.whatsapp.net"})
	evs := waitStored(t, st, KindAccountPaired, "account", "new@s.whatsapp.net")
	if len(evs) != 1 {
		t.Errorf("events %+v, want one account.paired", evs)
	}
}

// Two distinct happenings get distinct IDs even within one millisecond;
// one happening keeps its ID, which names its kind and state.
func TestAccountEventID(t *testing.T) {
	at := time.UnixMilli(1764700000123)
	a := AccountEventID(KindAccountState, "connected", at, 7)
	if a != "account.state.connected_1764700000123_7" {
		t.Errorf("ID %q", a)
	}
	if b := AccountEventID(KindAccountState, "connected", at, 8); b == a {
		t.Errorf("two events share ID %q", a)
	}
	if c := AccountEventID(KindAccountState, "connected", at, 7); c != a {
		t.Errorf("one happening has IDs %q and %q", a, c)
	}
	if q := AccountEventID(KindAccountQR, "", at, 1); q != "account.qr_1764700000123_1" {
		t.Errorf("QR event ID %q", q)
	}
}

// While the database fails, reporting does not wait for it: the events
// wait in the buffer, the oldest dropped and counted once it is full, and
// the rest are stored in order, once each, when the database is back.
func TestAccountEventsSurviveAFailingDatabase(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			logs := testkit.NewLogs()
			c := newClient(t, st, "https://example.invalid/hook", func(o *Options) { o.Logger = logs.Logger() })
			a := c.AccountEvents(3)
			a.retry.Base, a.retry.Max = time.Millisecond, 5*time.Millisecond
			exec := func(q string) {
				t.Helper()
				if _, err := st.DB().Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			exec(`ALTER TABLE blacksky_webhook RENAME TO blacksky_webhook_away`)
			runAccountEvents(t, a)
			t0 := time.Now()
			for i := range 5 {
				a.State(AccountState{State: "reconnecting", Reason: fmt.Sprintf("attempt %d", i+1), Time: t0.Add(time.Duration(i) * time.Millisecond)})
			}
			eventually(t, func(context.Context) (bool, string) {
				return logs.Count(slog.LevelError, "store account event; retrying") > 0, "no failed write:\n" + logs.String()
			})
			if n := a.Dropped(); n != 2 {
				t.Errorf("Dropped = %d, want the 2 oldest of 5 in a buffer of 3", n)
			}
			if n := logs.Count(slog.LevelError, "dropping the oldest"); n != 1 {
				t.Errorf("%d lines about dropping, want 1:\n%s", n, logs.String())
			}
			exec(`ALTER TABLE blacksky_webhook_away RENAME TO blacksky_webhook`)
			evs := waitStored(t, st, KindAccountState, "reason", "attempt 5")
			var reasons []string
			for _, e := range evs {
				reasons = append(reasons, e.Data["reason"].(string))
			}
			if got := strings.Join(reasons, ", "); got != "attempt 3, attempt 4, attempt 5" {
				t.Errorf("stored %s, want the newest 3 in order", got)
			}
			if logs.Count(slog.LevelInfo, "account events stored again") != 1 {
				t.Errorf("no line saying storing works again:\n%s", logs.String())
			}
		})
	}
}
