package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
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
				return got["state"] == "sent" || got["attempts"].(float64) >= 2
			}, bot)
			if got["state"] == "sent" {
				t.Fatalf("message recorded sent with %d messages in the contact's inbox: %v", len(inbox(t, sb, fresh)), got)
			}
			if !strings.Contains(fmt.Sprint(got["last_error"]), "not encrypted for every device") {
				t.Errorf("last_error %q; want the device that was left out", got["last_error"])
			}

			execSQL(t, db, "ALTER TABLE identity_keys_away RENAME TO whatsmeow_identity_keys")
			want := map[string][]string{fresh: {"to a new contact"}}
			checkExactlyOnceInOrder(t, waitDelivered(t, sb, []string{fresh}, want, bot), []string{fresh}, want)
			waitFor(t, "the message to be sent", func() bool { return getMessage(t, bot, m["id"])["state"] == "sent" }, bot)
		})
	}
}
