package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.mau.fi/whatsmeow/types"
)

// rowsQuerier is a *sql.DB or *sql.Tx.
type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// withLIDs fills ToLID of the phone-number chats among msgs from
// whatsmeow's LID map (whatsmeow_lid_map, in the same database), in one
// query, so the API and the webhook show both addresses of a contact.
func withLIDs(ctx context.Context, db rowsQuerier, msgs []Message) error {
	users := map[string][]int{}
	for i, m := range msgs {
		if user, ok := strings.CutSuffix(m.To, "@"+types.DefaultUserServer); ok {
			users[user] = append(users[user], i)
		}
	}
	if len(users) == 0 {
		return nil
	}
	args, marks := inList(nil, slices.Collect(maps.Keys(users)))
	rows, err := db.QueryContext(ctx, "SELECT pn, lid FROM whatsmeow_lid_map WHERE pn IN ("+marks+")", args...)
	if err != nil {
		return fmt.Errorf("look up the LIDs of %d chats: %w", len(users), err)
	}
	defer rows.Close()
	for rows.Next() {
		var pn, lid string
		if err := rows.Scan(&pn, &lid); err != nil {
			return fmt.Errorf("look up LIDs: %w", err)
		}
		for _, i := range users[pn] {
			msgs[i].ToLID = types.NewJID(lid, types.HiddenUserServer).String()
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up LIDs: %w", err)
	}
	return nil
}
