package backup

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.mau.fi/whatsmeow/types"
)

// Session is a snapshot of one account's WhatsApp session, in a form that
// does not depend on the database engine it came from.
type Session struct {
	// SessionID is the operator's name for the account (SESSION_ID).
	SessionID string
	// JID is the device JID whatsmeow keys the session by.
	JID types.JID
	// CreatedAt is when the snapshot was read.
	CreatedAt time.Time
	// PairedAt is when the account was paired, from blacksky_accounts.
	PairedAt time.Time
	// Tables holds the rows of each whatsmeow table, in restore order.
	Tables []Table
}

// Table is the snapshot of one table's rows.
type Table struct {
	Name    string
	Columns []Column
	// Rows holds one value per column: nil, int64, float64, string, []byte
	// or bool, as the column's Kind says.
	Rows [][]any
}

// Column names a column and the portable kind of its values.
type Column struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
}

// Kind is the engine-independent type of a column's values.
type Kind string

// The kinds a column can have.
const (
	KindText  Kind = "text"
	KindInt   Kind = "int"
	KindReal  Kind = "real"
	KindBytes Kind = "bytes"
	KindBool  Kind = "bool"
)

// RowCounts returns the number of rows per table name.
func (s *Session) RowCounts() map[string]int {
	n := make(map[string]int, len(s.Tables))
	for _, t := range s.Tables {
		n[t.Name] = len(t.Rows)
	}
	return n
}

// table returns the named table of the snapshot, or nil.
func (s *Session) table(name string) *Table {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i]
		}
	}
	return nil
}

// tableJSON is the wire form of a Table: values are JSON strings, numbers,
// booleans or null, bytes in standard base64, so the snapshot is portable
// and int64 values survive exactly.
type tableJSON struct {
	Name    string              `json:"name"`
	Columns []Column            `json:"columns"`
	Rows    [][]json.RawMessage `json:"rows"`
}

// MarshalJSON encodes the rows by their columns' kinds.
func (t Table) MarshalJSON() ([]byte, error) {
	out := tableJSON{Name: t.Name, Columns: t.Columns, Rows: make([][]json.RawMessage, len(t.Rows))}
	for i, row := range t.Rows {
		if len(row) != len(t.Columns) {
			return nil, fmt.Errorf("table %s row %d: %d values for %d columns", t.Name, i, len(row), len(t.Columns))
		}
		enc := make([]json.RawMessage, len(row))
		for j, v := range row {
			raw, err := encodeValue(v, t.Columns[j].Kind)
			if err != nil {
				return nil, fmt.Errorf("table %s column %s: %w", t.Name, t.Columns[j].Name, err)
			}
			enc[j] = raw
		}
		out.Rows[i] = enc
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes and type-checks the rows by their columns' kinds.
func (t *Table) UnmarshalJSON(data []byte) error {
	var in tableJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	for _, c := range in.Columns {
		if !c.Kind.valid() {
			return fmt.Errorf("table %s column %s: unknown kind %q", in.Name, c.Name, c.Kind)
		}
	}
	t.Name, t.Columns, t.Rows = in.Name, in.Columns, make([][]any, len(in.Rows))
	for i, raw := range in.Rows {
		if len(raw) != len(in.Columns) {
			return fmt.Errorf("table %s row %d: %d values for %d columns", in.Name, i, len(raw), len(in.Columns))
		}
		row := make([]any, len(raw))
		for j, r := range raw {
			v, err := decodeValue(r, in.Columns[j].Kind)
			if err != nil {
				return fmt.Errorf("table %s column %s: %w", in.Name, in.Columns[j].Name, err)
			}
			row[j] = v
		}
		t.Rows[i] = row
	}
	return nil
}

func (k Kind) valid() bool {
	switch k {
	case KindText, KindInt, KindReal, KindBytes, KindBool:
		return true
	}
	return false
}

func encodeValue(v any, k Kind) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("null"), nil
	}
	var ok bool
	switch k {
	case KindText:
		_, ok = v.(string)
	case KindInt:
		var n int64
		if n, ok = v.(int64); ok {
			return strconv.AppendInt(nil, n, 10), nil
		}
	case KindReal:
		_, ok = v.(float64)
	case KindBytes:
		var b []byte
		if b, ok = v.([]byte); ok {
			return json.Marshal(base64.StdEncoding.EncodeToString(b))
		}
	case KindBool:
		_, ok = v.(bool)
	}
	if !ok {
		return nil, fmt.Errorf("value of type %T in a %s column", v, k)
	}
	return json.Marshal(v)
}

func decodeValue(raw json.RawMessage, k Kind) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var err error
	switch k {
	case KindText:
		var s string
		err = json.Unmarshal(raw, &s)
		return s, err
	case KindInt:
		var n int64
		err = json.Unmarshal(raw, &n)
		return n, err
	case KindReal:
		var f float64
		err = json.Unmarshal(raw, &f)
		return f, err
	case KindBytes:
		var s string
		if err = json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(s)
	case KindBool:
		var b bool
		err = json.Unmarshal(raw, &b)
		return b, err
	}
	return nil, fmt.Errorf("unknown kind %q", k)
}
