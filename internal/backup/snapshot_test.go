package backup

import (
	"context"
	"errors"
	"testing"
)

// A whatsmeow upgrade that adds a table must not silently drop it from
// backups: every whatsmeow_* table is listed, and listed right.
func TestSessionTablesCoverSchema(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, kind)
			names, err := whatsmeowTables(ctx, st.DB(), kind)
			if err != nil {
				t.Fatal(err)
			}
			present := map[string]bool{}
			for _, name := range names {
				present[name] = true
				if _, ok := ignoredTables[name]; ok {
					continue
				}
				spec, ok := specFor(name)
				if !ok {
					t.Errorf("whatsmeow table %s is neither backed up nor ignored: add it to sessionTables in foreign-key order", name)
					continue
				}
				cols, err := columns(ctx, st.DB(), kind, name)
				if err != nil {
					t.Fatal(err)
				}
				key := ""
				for _, c := range cols {
					if c.Name == "our_jid" || (c.Name == "jid" && key == "") {
						key = c.Name
					}
				}
				if spec.key != key {
					t.Errorf("table %s: device key column is %q, sessionTables says %q", name, key, spec.key)
				}
			}
			for _, spec := range sessionTables {
				if !present[spec.name] {
					t.Errorf("sessionTables lists %s, which the schema lacks", spec.name)
				}
			}
		})
	}
}

func TestSnapshotNotPaired(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, kind)
			if _, err := Snapshot(ctx, st, testSession); !errors.Is(err, ErrNotPaired) {
				t.Fatalf("Snapshot of a never-paired session = %v, want ErrNotPaired", err)
			}
			dev := pairDevice(t, st, testSession, "15550000001")
			if err := st.Container().DeleteDevice(ctx, dev); err != nil {
				t.Fatal(err)
			}
			if _, err := Snapshot(ctx, st, testSession); !errors.Is(err, ErrNotPaired) {
				t.Fatalf("Snapshot of a session whose device is gone = %v, want ErrNotPaired", err)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	tests := map[string]Kind{
		"TEXT": KindText, "text": KindText, "uuid": KindText, "character varying": KindText,
		"BIGINT": KindInt, "INTEGER": KindInt, "integer": KindInt, "bigint": KindInt,
		"bytea": KindBytes, "BLOB": KindBytes, "": KindBytes,
		"BOOLEAN": KindBool, "boolean": KindBool,
		"REAL": KindReal, "double precision": KindReal,
	}
	for in, want := range tests {
		if got := kindOf(in); got != want {
			t.Errorf("kindOf(%q) = %s, want %s", in, got, want)
		}
	}
}
