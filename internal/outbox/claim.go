package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// Claiming is two steps. First the candidates: each chat's first open
// (pending or sending) message is its head, and the heads that are due are
// the candidates, oldest first. They are found by reading open rows in id
// order, a page at a time, leaving out chats already seen: a plain ordered
// scan of a partial index that PostgreSQL plans the same way whatever its
// statistics say. (One query with per-row head subqueries was tried and
// planned badly, up to seconds per claim, on a table that grew since it
// was last analysed, or with a large backlog in few chats.) Then one
// statement takes the candidates, re-checking every condition on each, so
// a message another process took or sent meanwhile is passed over.

// claimPageSize is how many open rows one candidate query reads.
const claimPageSize = 200

// maxSeenChats bounds the chats a candidate search leaves out of its next
// page; past it the search stops with what it found, and chats further on
// wait until the heads before them move.
const maxSeenChats = 1000

// claimSQL takes the candidate ids given as a list in $6. A message is
// due when it is pending and its run_at has come, or sending under a lease
// that ran out (its owner died). FIFO per chat: it must still be its
// chat's head, and no message of its chat may be under a live lease. $5 > 0
// adds the per-chat gap: nothing for a chat that had a message sent after
// $5. Attempts count claims, so a message that kills its process every
// time still reaches MaxAttempts. The first and third %s are per engine:
// on PostgreSQL the rows are locked, skipping those another process is
// claiming right now, and the update finds them by primary key; the second
// matches the list (see listParam). The text is fixed per engine, so the
// statement is prepared once per connection.
const claimSQL = `UPDATE blacksky_outbox
	SET state = 'sending', attempts = attempts + 1, lease_owner = $2, lease_until = $3, updated_at = $1
	WHERE id %s
		SELECT o.id FROM blacksky_outbox o
		WHERE %s AND o.session_id = $4
		  AND o.state IN ('pending', 'sending')
		  AND (CASE WHEN o.state = 'pending' THEN o.run_at ELSE o.lease_until END) <= $1
		  AND o.id = (SELECT h.id FROM blacksky_outbox h
			WHERE h.session_id = o.session_id AND h.chat = o.chat AND h.state IN ('pending', 'sending')
			ORDER BY h.session_id, h.chat, h.id LIMIT 1)
		  AND (SELECT count(*) FROM blacksky_outbox s
			WHERE s.session_id = o.session_id AND s.chat = o.chat AND s.state = 'sending' AND s.lease_until > $1) = 0
		  AND (CAST($5 AS BIGINT) <= 0 OR (SELECT count(*) FROM blacksky_outbox g
			WHERE g.session_id = o.session_id AND g.state = 'sent' AND g.sent_at > $5 AND g.chat = o.chat) = 0)
		%s
	RETURNING ` + columns

// claim leases up to n due messages to this process, oldest first.
func (q *Queue) claim(ctx context.Context, n int) ([]Message, error) {
	now := q.now()
	var gapSince int64
	if q.opts.ChatGap > 0 {
		gapSince = ms(now.Add(-q.opts.ChatGap))
	}
	ids, err := q.candidates(ctx, now, n, gapSince)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	rows, err := q.db.QueryContext(ctx, q.sql.claim, q.sql.args(
		ms(now), q.opts.Owner, ms(now.Add(q.opts.Lease)), q.opts.Session, gapSince, q.listParam(ids))...)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	msgs, err := scanAll(rows)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	// RETURNING has no order; send the older first.
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	return msgs, nil
}

// candidatesSQL reads a page of open rows after id $2, leaving out the
// chats in the list $4 (%s, per engine; see listParam).
const candidatesSQL = `SELECT id, chat, state, run_at, lease_until FROM blacksky_outbox
	WHERE session_id = $1 AND state IN ('pending', 'sending') AND id > $2
	  AND %s
	ORDER BY id LIMIT $3`

// statements are the queries whose text depends on the engine.
type statements struct {
	claim, candidates string
	// planned goes before the arguments of claim and candidates. On
	// PostgreSQL it has them planned for their values every time: a plan
	// made once for any value walks the primary key through every sent
	// row instead of the index of open ones.
	planned []any
}

// args returns the arguments of claim or candidates as the engine needs them.
func (s statements) args(args ...any) []any { return append(s.planned, args...) }

func newStatements(kind store.Engine) statements {
	if kind == store.Postgres {
		return statements{
			claim:      fmt.Sprintf(claimSQL, "= ANY(ARRAY(", "o.id = ANY(CAST($6 AS BIGINT[]))", "FOR UPDATE SKIP LOCKED))"),
			candidates: fmt.Sprintf(candidatesSQL, "chat <> ALL(CAST($4 AS TEXT[]))"),
			planned:    []any{pgx.QueryExecModeExec},
		}
	}
	return statements{
		claim:      fmt.Sprintf(claimSQL, "IN (", "o.id IN (SELECT value FROM json_each($6))", ")"),
		candidates: fmt.Sprintf(candidatesSQL, "chat NOT IN (SELECT value FROM json_each($4))"),
	}
}

// listParam passes a list as one parameter: an array to PostgreSQL, JSON
// text to SQLite's json_each.
func (q *Queue) listParam(list any) any {
	if q.engine == store.Postgres {
		return list
	}
	b, _ := json.Marshal(list) // slices of strings and ints always marshal
	if string(b) == "null" {
		return "[]" // a nil slice; NOT IN (NULL) would match nothing
	}
	return string(b)
}

// candidates returns up to n ids of chat heads that are due now, oldest
// first, leaving out chats with a message sent after gapSince (when > 0).
func (q *Queue) candidates(ctx context.Context, now time.Time, n int, gapSince int64) ([]int64, error) {
	seen := make(map[string]bool) // chats whose head has been read
	if gapSince > 0 {
		rows, err := q.db.QueryContext(ctx, `SELECT DISTINCT chat FROM blacksky_outbox
			WHERE session_id = $1 AND state = 'sent' AND sent_at > $2`, q.opts.Session, gapSince)
		if err != nil {
			return nil, fmt.Errorf("find chats within their gap: %w", err)
		}
		for rows.Next() {
			var chat string
			if err := rows.Scan(&chat); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find chats within their gap: %w", err)
			}
			seen[chat] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find chats within their gap: %w", err)
		}
	}
	nowMS := ms(now)
	var ids []int64
	var after int64
	for len(ids) < n && len(seen) <= maxSeenChats {
		chats := make([]string, 0, len(seen))
		for chat := range seen {
			chats = append(chats, chat)
		}
		rows, err := q.db.QueryContext(ctx, q.sql.candidates, q.sql.args(q.opts.Session, after, claimPageSize, q.listParam(chats))...)
		if err != nil {
			return nil, fmt.Errorf("find claimable messages: %w", err)
		}
		read := 0
		for rows.Next() {
			var (
				id, runAt  int64
				chat       string
				state      State
				leaseUntil sql.NullInt64
			)
			if err := rows.Scan(&id, &chat, &state, &runAt, &leaseUntil); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find claimable messages: %w", err)
			}
			read++
			after = id
			if seen[chat] {
				continue // not the chat's head
			}
			seen[chat] = true
			due := (state == Pending && runAt <= nowMS) || (state == Sending && leaseUntil.Int64 <= nowMS)
			if due && len(ids) < n {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find claimable messages: %w", err)
		}
		if read < claimPageSize {
			break // no open rows left
		}
	}
	return ids, nil
}
