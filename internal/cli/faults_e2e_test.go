package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// botDB opens the bot's database beside it, as an operator's tool would.
func botDB(t *testing.T, env map[string]string) *sql.DB {
	t.Helper()
	var db *sql.DB
	if url := env["DATABASE_URL"]; url != "" {
		var err error
		if db, err = sql.Open("pgx", url); err != nil {
			t.Fatal(err)
		}
	} else {
		db = sqlitedb.Open("file:"+filepath.Join(env["DATA_DIR"], "blacksky.db")+"?_pragma=busy_timeout(10000)", sqlitedb.Options{})
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Issue 13, case 3: whatsmeow leaves out a device whose encryption fails
// (here: the identity keys cannot be read, as with a damaged database file)
// and reports success, and WhatsApp acks what reached the other devices. The
// message to a new contact must not be recorded sent while the contact got
// nothing: it is retried, and arrives once the store works again.
func TestSendThatLeftOutADeviceIsNotSent(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			known, fresh := "15550000002", "15550000003"
			sb := startSandbox(t, known, fresh)
			env := botEnv(t, sb, dbURL(t))
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)
			postMessage(t, bot, known, "hello")
			waitFor(t, "the first message", func() bool { return len(inbox(t, sb, known)) == 1 }, bot, sb.process)

			db := botDB(t, env)
			execSQL(t, db, "ALTER TABLE whatsmeow_identity_keys RENAME TO identity_keys_away")
			m := postMessage(t, bot, fresh, "to a new contact")
			var got map[string]any
			waitFor(t, "a second attempt at the message", func() bool {
				got = getMessage(t, bot, m["id"])
				return wasSent(got) || got["attempts"].(float64) >= 2
			}, bot)
			if wasSent(got) {
				t.Fatalf("message recorded sent with %d messages in the contact's inbox: %v", len(inbox(t, sb, fresh)), got)
			}
			if !strings.Contains(fmt.Sprint(got["last_error"]), "not encrypted for every device") {
				t.Errorf("last_error %q; want the device that was left out", got["last_error"])
			}

			execSQL(t, db, "ALTER TABLE identity_keys_away RENAME TO whatsmeow_identity_keys")
			want := map[string][]string{fresh: {"to a new contact"}}
			checkExactlyOnceInOrder(t, waitDelivered(t, sb, []string{fresh}, want, bot), []string{fresh}, want)
			waitFor(t, "the message to be sent", func() bool { return wasSent(getMessage(t, bot, m["id"])) }, bot)
		})
	}
}

// checkOneConnectionAtATime fails the test if the sandbox ever saw two
// connections for the account at once, told a connection another one
// replaced it, or a contact could not decrypt a message from the bot.
func checkOneConnectionAtATime(t *testing.T, sb sandboxProc) {
	t.Helper()
	var events []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	}
	control(t, sb.url, "GET", "/control/events", nil, &events)
	open, most := 0, 0
	for _, e := range events {
		switch e.Kind {
		case "conn_opened":
			open++
		case "conn_closed":
			open--
		case "stream_error":
			if strings.Contains(e.Detail, "conflict") || strings.Contains(e.Detail, "replaced") {
				t.Errorf("the sandbox told a connection it was replaced: %s", e.Detail)
			}
		case "decrypt_failed":
			t.Errorf("a contact could not decrypt a message from the bot: %s", e.Detail)
		}
		most = max(most, open)
	}
	if most > 1 {
		t.Errorf("the sandbox saw %d connections for the account at once", most)
	}
}

// leader returns whichever of bots is ready (holds the lease and is
// connected), waiting for one.
func leader(t *testing.T, bots ...*process) (lead *process, other *process) {
	t.Helper()
	waitFor(t, "one bot to lead", func() bool {
		for i, b := range bots {
			if readyz(b) == http.StatusOK {
				lead, other = b, bots[1-i]
				return true
			}
		}
		return false
	}, bots...)
	return lead, other
}

func readyz(p *process) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// standbyReady waits until p reports that it waits for the lease.
func standbyReady(t *testing.T, p *process) {
	t.Helper()
	waitFor(t, "the other bot to wait as a standby", func() bool {
		var body map[string]any
		code := control(t, botURL(p), "GET", "/readyz", nil, &body)
		return code == http.StatusServiceUnavailable && body["reason"] == "standby"
	}, p)
}

// Issue 13, cases 1 and 2: the lease's lock goes away while its holder
// lives (the SQLite lock file deleted, only the PostgreSQL lease connection
// dropped). Before, the standby took the lease and connected while the
// holder was still connected: two connections, each replacing the other.
// Now the holder stops and the standby connects only after it has: round
// after round, the sandbox never sees two connections, and every message
// arrives once, in order, decryptable.
func TestLeaseLostWhileTheHolderLives(t *testing.T) {
	faults := map[string]struct {
		dbURL func(*testing.T) string
		cut   func(t *testing.T, env map[string]string, holder *process)
	}{
		"sqlite lock file deleted": {
			dbURL: func(*testing.T) string { return "" },
			cut: func(t *testing.T, env map[string]string, _ *process) {
				if err := os.Remove(filepath.Join(env["DATA_DIR"], "blacksky.db.lease-e2e")); err != nil {
					t.Fatal(err)
				}
			},
		},
		"postgres lease connection dropped": {
			dbURL: func(t *testing.T) string { return testdb.PostgresURL(t) },
			cut: func(t *testing.T, env map[string]string, _ *process) {
				// The one connection of this database that holds an advisory
				// lock is the holder's lease connection.
				var n int
				err := botDB(t, env).QueryRowContext(context.Background(), `SELECT count(pg_terminate_backend(a.pid))
					FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
					WHERE a.datname = current_database()`).Scan(&n)
				if err != nil || n != 1 {
					t.Fatalf("drop the holder's lease connection: %d dropped, %v", n, err)
				}
			},
		},
	}
	for name, f := range faults {
		t.Run(name, func(t *testing.T) {
			contacts := []string{"15550000002", "15550000003"}
			sb := startSandbox(t, contacts...)
			env := botEnv(t, sb, f.dbURL(t))
			first := start(t, env)
			pairThroughControlAPI(t, sb, first)
			second := start(t, restartEnv(env))
			standbyReady(t, second)
			want := map[string][]string{}
			holder, standby := first, second
			for round := range 3 {
				enqueue(t, env, contacts, fmt.Sprintf("round%d", round), 10, want)
				f.cut(t, env, holder)
				standbyReady(t, holder)
				holder, standby = leader(t, first, second)
				if standby == nil {
					t.Fatal("no standby")
				}
			}
			checkExactlyOnceInOrder(t, waitDelivered(t, sb, contacts, want, first, second), contacts, want)
			checkOneConnectionAtATime(t, sb)
		})
	}
}

// Issue 13, case 4: PostgreSQL dropping every connection every 100 ms for a
// few seconds made 'blacksky run' exit 1 ("restore session: check session:
// read account"). A passing database fault must not end the process: the
// bot keeps running, is ready again once the database is, and delivers.
func TestDatabaseDroppingConnectionsDoesNotEndTheBot(t *testing.T) {
	contact := "15550000002"
	sb := startSandbox(t, contact)
	env := botEnv(t, sb, testdb.PostgresURL(t))
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	want := map[string][]string{}
	enqueue(t, env, []string{contact}, "before", 3, want)

	db := botDB(t, env)
	db.SetMaxOpenConns(1)
	tick := time.NewTicker(100 * time.Millisecond)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-tick.C {
		db.ExecContext(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		if bot.Exited() {
			t.Fatalf("the bot exited while the database dropped its connections:\n%s", bot.Output())
		}
	}
	tick.Stop()
	bot.waitHTTP(t, "/readyz", http.StatusOK)
	enqueue(t, env, []string{contact}, "after", 3, want)
	checkExactlyOnceInOrder(t, waitDelivered(t, sb, []string{contact}, want, bot), []string{contact}, want)
}

// Issue 13, cases 5 and 6: the data directory deleted under a running bot
// on SQLite. Before, every enqueue still answered 202, into files that no
// longer existed, and /readyz stayed 200; a restart then had none of them.
// Now nothing is accepted that cannot be kept: enqueues answer 503 with
// Retry-After, readiness says why, and the bot stops sending (its lease
// file went with the directory).
func TestDeletedDataDirectoryAcceptsNothing(t *testing.T) {
	contact := "15550000002"
	sb := startSandbox(t, contact)
	env := botEnv(t, sb, "")
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	postMessage(t, bot, contact, "before")
	waitFor(t, "the first message", func() bool { return len(inbox(t, sb, contact)) == 1 }, bot)

	if err := os.RemoveAll(env["DATA_DIR"]); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		body, _ := json.Marshal(map[string]string{"to": contact, "text": fmt.Sprintf("after %d", i)})
		resp, err := http.Post(botURL(bot)+"/api/v1/messages", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("POST after the data directory was deleted: %d (Retry-After %q); want 503 with Retry-After",
				resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	waitFor(t, "/readyz to name the deleted database file", func() bool {
		var ready map[string]any
		code := control(t, botURL(bot), "GET", "/readyz", nil, &ready)
		return code == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(ready["reason"]), "deleted or replaced")
	}, bot)
	if n := len(inbox(t, sb, contact)); n != 1 {
		t.Errorf("the contact got %d messages; want only the one accepted before", n)
	}
}
