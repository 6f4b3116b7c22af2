package backup

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// maxParams keeps a multi-row INSERT under both engines' limits on bound
// parameters (SQLite 32766, PostgreSQL 65535).
const maxParams = 30000

// Restore replaces the device's session in st with the snapshot, in one
// transaction: the device's rows are deleted, the snapshot's inserted
// (the shared LID map is merged), and SessionID is bound to the device.
// The store must be migrated; the device must not be connected.
func Restore(ctx context.Context, st *store.Store, s *Session) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("restore session %s: %w", s.SessionID, err)
	}
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("restore session %s: %w", s.SessionID, err)
	}
	defer tx.Rollback()
	if err := restoreTx(ctx, tx, st.Engine(), s); err != nil {
		return fmt.Errorf("restore session %s: %w", s.SessionID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("restore session %s: commit: %w", s.SessionID, err)
	}
	return nil
}

func restoreTx(ctx context.Context, tx *sql.Tx, kind store.Engine, s *Session) error {
	jid := s.JID.String()
	// Children first, so no foreign key is violated midway; the cascade
	// from whatsmeow_device would do most of it, but privacy tokens have no
	// foreign key and explicit deletes do not depend on the pragma.
	for i := len(sessionTables) - 1; i >= 0; i-- {
		spec := sessionTables[i]
		if spec.key == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+spec.name+" WHERE "+quote(spec.key)+" = $1", jid); err != nil {
			return fmt.Errorf("clear %s: %w", spec.name, err)
		}
	}
	for _, spec := range sessionTables {
		t := s.table(spec.name)
		if t == nil || len(t.Rows) == 0 {
			continue
		}
		target, err := columns(ctx, tx, kind, spec.name)
		if err != nil {
			return err
		}
		kinds, err := targetKinds(t, target)
		if err != nil {
			return err
		}
		if spec.key == "" {
			err = mergeRows(ctx, tx, spec, t, kinds)
		} else {
			err = insertRows(ctx, tx, t, kinds)
		}
		if err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO blacksky_accounts (session_id, jid, paired_at, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (session_id) DO UPDATE SET jid = excluded.jid, paired_at = excluded.paired_at, updated_at = excluded.updated_at`,
		s.SessionID, jid, s.PairedAt.UnixMilli(), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("bind account: %w", err)
	}
	return nil
}

// targetKinds matches the snapshot's columns to the target table's. A
// column the target lacks means the backup comes from a newer whatsmeow;
// columns the snapshot lacks take their defaults.
func targetKinds(t *Table, target []Column) ([]Kind, error) {
	byName := make(map[string]Kind, len(target))
	for _, c := range target {
		byName[c.Name] = c.Kind
	}
	kinds := make([]Kind, len(t.Columns))
	for i, c := range t.Columns {
		k, ok := byName[c.Name]
		if !ok {
			return nil, fmt.Errorf("table %s has no column %s that the backup holds: the backup comes from a newer version; upgrade blacksky", t.Name, c.Name)
		}
		kinds[i] = k
	}
	return kinds, nil
}

func insertRows(ctx context.Context, tx *sql.Tx, t *Table, kinds []Kind) error {
	per := max(1, min(500, maxParams/len(t.Columns)))
	for start := 0; start < len(t.Rows); start += per {
		batch := t.Rows[start:min(start+per, len(t.Rows))]
		var b strings.Builder
		b.WriteString("INSERT INTO " + t.Name + " (" + columnList(t.Columns) + ") VALUES ")
		args := make([]any, 0, len(batch)*len(t.Columns))
		for i, row := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range row {
				if j > 0 {
					b.WriteString(", ")
				}
				arg, err := convert(v, kinds[j])
				if err != nil {
					return fmt.Errorf("insert into %s.%s: %w", t.Name, t.Columns[j].Name, err)
				}
				args = append(args, arg)
				b.WriteString("$" + strconv.Itoa(len(args)))
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert into %s: %w", t.Name, err)
		}
	}
	return nil
}

// mergeRows upserts the rows of a shared table. For the LID map it also
// drops the target's mappings of the same phone number to another LID,
// as whatsmeow does, since pn is unique.
func mergeRows(ctx context.Context, tx *sql.Tx, spec tableSpec, t *Table, kinds []Kind) error {
	cols := columnList(t.Columns)
	ph := make([]string, len(t.Columns))
	var set []string
	for i, c := range t.Columns {
		ph[i] = "$" + strconv.Itoa(i+1)
		if c.Name != spec.conflict {
			set = append(set, quote(c.Name)+" = excluded."+quote(c.Name))
		}
	}
	query := "INSERT INTO " + t.Name + " (" + cols + ") VALUES (" + strings.Join(ph, ", ") + ") ON CONFLICT (" + quote(spec.conflict) + ") DO "
	if len(set) == 0 {
		query += "NOTHING"
	} else {
		query += "UPDATE SET " + strings.Join(set, ", ")
	}
	lid, pn := colIndex(t, "lid"), colIndex(t, "pn")
	for _, row := range t.Rows {
		args := make([]any, len(row))
		for j, v := range row {
			arg, err := convert(v, kinds[j])
			if err != nil {
				return fmt.Errorf("merge into %s.%s: %w", t.Name, t.Columns[j].Name, err)
			}
			args[j] = arg
		}
		if spec.name == "whatsmeow_lid_map" && lid >= 0 && pn >= 0 {
			if _, err := tx.ExecContext(ctx, "DELETE FROM whatsmeow_lid_map WHERE lid <> $1 AND pn = $2", args[lid], args[pn]); err != nil {
				return fmt.Errorf("merge into %s: %w", t.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("merge into %s: %w", t.Name, err)
		}
	}
	return nil
}

func colIndex(t *Table, name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// convert turns a portable value into what the target column takes.
func convert(v any, target Kind) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case bool:
		if target == KindInt {
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case int64:
		if target == KindBool && (x == 0 || x == 1) {
			return x == 1, nil
		}
		if target == KindReal {
			return float64(x), nil
		}
	}
	if _, err := encodeValue(v, target); err != nil {
		return nil, err
	}
	return v, nil
}

// validate checks that the snapshot only touches its own device: every
// device-keyed row carries the snapshot's JID, and the device row exists.
func (s *Session) validate() error {
	if s.SessionID == "" || s.JID.IsEmpty() {
		return fmt.Errorf("snapshot has no session id or device jid")
	}
	jid := s.JID.String()
	seen := map[string]bool{}
	for _, t := range s.Tables {
		spec, ok := specFor(t.Name)
		if !ok {
			return fmt.Errorf("backup holds table %s that this version does not know; upgrade blacksky", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("backup holds table %s twice", t.Name)
		}
		seen[t.Name] = true
		if len(t.Columns) == 0 {
			return fmt.Errorf("backup table %s has no columns", t.Name)
		}
		names := map[string]bool{}
		for _, c := range t.Columns {
			if names[c.Name] {
				return fmt.Errorf("backup table %s has column %s twice", t.Name, c.Name)
			}
			names[c.Name] = true
		}
		for i, row := range t.Rows {
			if len(row) != len(t.Columns) {
				return fmt.Errorf("backup table %s row %d has %d values for %d columns", t.Name, i, len(row), len(t.Columns))
			}
		}
		if spec.key == "" {
			continue
		}
		k := colIndex(&t, spec.key)
		if k < 0 {
			return fmt.Errorf("backup table %s lacks its key column %s", t.Name, spec.key)
		}
		for _, row := range t.Rows {
			if row[k] != jid {
				return fmt.Errorf("backup table %s holds rows of another device", t.Name)
			}
		}
	}
	if dev := s.table("whatsmeow_device"); dev == nil || len(dev.Rows) != 1 {
		return fmt.Errorf("backup holds no device row")
	}
	return nil
}
