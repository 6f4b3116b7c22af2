package backup

import (
	"context"
	"fmt"
	"strings"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// tableSpec says how a whatsmeow table relates to a device.
type tableSpec struct {
	name string
	// key is the column holding the device JID; "" marks a table shared by
	// all devices, which is merged on restore instead of replaced.
	key string
	// conflict is the primary key of a shared table, for the upsert.
	conflict string
}

// sessionTables lists whatsmeow's tables (schema v15 of the vendored
// version) in foreign-key order: parents before children, so inserts go
// forward and deletes go backward. A fixed list rather than discovery, so
// the order and the device/shared split are reviewed, not guessed;
// TestSessionTablesCoverSchema fails when whatsmeow adds a table.
var sessionTables = []tableSpec{
	{name: "whatsmeow_device", key: "jid"},
	{name: "whatsmeow_identity_keys", key: "our_jid"},
	{name: "whatsmeow_pre_keys", key: "jid"},
	{name: "whatsmeow_sessions", key: "our_jid"},
	{name: "whatsmeow_sender_keys", key: "our_jid"},
	{name: "whatsmeow_app_state_sync_keys", key: "jid"},
	{name: "whatsmeow_app_state_version", key: "jid"},
	{name: "whatsmeow_app_state_mutation_macs", key: "jid"},
	{name: "whatsmeow_contacts", key: "our_jid"},
	{name: "whatsmeow_chat_settings", key: "our_jid"},
	{name: "whatsmeow_message_secrets", key: "our_jid"},
	{name: "whatsmeow_privacy_tokens", key: "our_jid"},
	{name: "whatsmeow_event_buffer", key: "our_jid"},
	// Outgoing messages kept for retry receipts; empty while whatsmeow's
	// UseRetryMessageStore is off (blacksky answers them from its queue).
	{name: "whatsmeow_retry_buffer", key: "our_jid"},
	// The salt of the cstoken whatsmeow sends to contacts it has no privacy
	// token for (reach-out lock, error 463): part of the device's state.
	{name: "whatsmeow_nct_salt", key: "our_jid"},
	// The LID<->phone number map is global knowledge, not the device's
	// secret, but Signal sessions with LID contacts are addressed through
	// it, so a restore without it starts with needless lookups.
	{name: "whatsmeow_lid_map", conflict: "lid"},
}

// ignoredTables are whatsmeow tables that hold no session data.
var ignoredTables = map[string]string{
	"whatsmeow_version": "schema version, written by the migrations of the target",
}

func specFor(name string) (tableSpec, bool) {
	for _, t := range sessionTables {
		if t.name == name {
			return t, true
		}
	}
	return tableSpec{}, false
}

// columns returns the columns of table in definition order with their
// portable kinds, read from the database's catalog so that columns
// whatsmeow adds later are carried without a change here.
func columns(ctx context.Context, q querier, kind store.Engine, table string) ([]Column, error) {
	var query string
	var args []any
	if kind == store.SQLite {
		// PRAGMA table_info takes no bound parameters; the name comes
		// from sessionTables, never from input.
		query = "SELECT name, type FROM pragma_table_info('" + table + "') ORDER BY cid"
	} else {
		query = `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
		args = []any{table}
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		cols = append(cols, Column{Name: name, Kind: kindOf(typ)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return cols, nil
}

// kindOf maps a declared SQL type to a portable kind, following SQLite's
// affinity rules so that both engines' spellings land in the same place.
func kindOf(declared string) Kind {
	t := strings.ToLower(declared)
	switch {
	case strings.Contains(t, "bool"):
		return KindBool
	case strings.Contains(t, "int"):
		return KindInt
	case strings.Contains(t, "bytea"), strings.Contains(t, "blob"), t == "":
		return KindBytes
	case strings.Contains(t, "real"), strings.Contains(t, "floa"), strings.Contains(t, "doub"), strings.Contains(t, "numeric"):
		return KindReal
	default: // text, char, uuid
		return KindText
	}
}

// whatsmeowTables lists the whatsmeow_* tables that exist in the database.
func whatsmeowTables(ctx context.Context, q querier, kind store.Engine) ([]string, error) {
	query := `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name LIKE 'whatsmeow\_%' ORDER BY table_name`
	if kind == store.SQLite {
		query = `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'whatsmeow\_%' ESCAPE '\' ORDER BY name`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list whatsmeow tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list whatsmeow tables: %w", err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
