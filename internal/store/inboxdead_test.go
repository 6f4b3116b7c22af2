package store

import (
	"context"
	"testing"
)

// Migration 11 renames the incoming messages' dead letter from "failed" to
// "dead" and keeps every row and column as it was (SQLite rebuilds the
// table for its CHECK constraint); going down gives "failed" back.
func TestInboxDeadMigrationKeepsTheRows(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			p, err := s.provider()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 10); err != nil {
				t.Fatal(err)
			}
			for i, state := range []string{"pending", "handled", "failed"} {
				_, err := s.db.ExecContext(ctx, `INSERT INTO blacksky_inbox (session_id, chat, msg_id, sender, kind, text,
					sent_at, received_at, state, attempts, last_error, run_at, updated_at)
					VALUES ('s', 'c', $1, 'x', 'text', 'hi', 1, 2, $2, 5, 'disk full', 3, 4)`, "m"+string(rune('0'+i)), state)
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := p.UpTo(ctx, 11); err != nil {
				t.Fatal(err)
			}
			states := func() map[string]string {
				rows, err := s.db.QueryContext(ctx, `SELECT msg_id, state FROM blacksky_inbox WHERE attempts = 5 AND last_error = 'disk full' ORDER BY id`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				out := map[string]string{}
				for rows.Next() {
					var id, st string
					rows.Scan(&id, &st)
					out[id] = st
				}
				return out
			}
			if got := states(); got["m0"] != "pending" || got["m1"] != "handled" || got["m2"] != "dead" || len(got) != 3 {
				t.Fatalf("after the migration: %v", got)
			}
			if _, err := s.db.ExecContext(ctx, `UPDATE blacksky_inbox SET state = 'failed' WHERE msg_id = 'm0'`); err == nil {
				t.Error("the old word is still allowed")
			}
			if _, err := p.DownTo(ctx, 10); err != nil {
				t.Fatal(err)
			}
			if got := states(); got["m2"] != "failed" || len(got) != 3 {
				t.Fatalf("after going down: %v", got)
			}
		})
	}
}
