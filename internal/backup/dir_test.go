package backup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)

func entryTimes(es []Entry) []time.Time {
	var out []time.Time
	for _, e := range es {
		out = append(out, e.CreatedAt)
	}
	return out
}

func TestDirWriteListPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "backups")
	d := NewDir(path, testSession)
	other := NewDir(path, "default-2") // a session whose name extends ours
	var written []time.Time
	for i := range 4 {
		at := t0.Add(time.Duration(i) * time.Hour)
		e, err := d.Write(ctx, []byte{byte(i)}, at)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(path, "blacksky-default-"+at.Format(timeLayout)+".bkp"); e.Path != want {
			t.Errorf("file %s, want %s", e.Path, want)
		}
		written = append(written, at)
	}
	// Same second, a millisecond later: a separate file.
	if _, err := d.Write(ctx, []byte{9}, t0.Add(3*time.Hour+time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	written = append(written, t0.Add(3*time.Hour+time.Millisecond))
	if _, err := other.Write(ctx, []byte{7}, t0.Add(99*time.Hour)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(path, "README"), []byte("not a backup"), 0o600)

	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(written)
	if got := entryTimes(list); !slices.EqualFunc(got, written, time.Time.Equal) {
		t.Fatalf("List = %v, want newest first %v", got, written)
	}
	if data, err := d.Read(ctx, list[0]); err != nil || len(data) != 1 || data[0] != 9 {
		t.Fatalf("Read newest = %v, %v", data, err)
	}

	removed, err := d.Prune(ctx, 2)
	if err != nil || len(removed) != 3 {
		t.Fatalf("Prune(2) removed %v, %v; want 3 files", removed, err)
	}
	list, _ = d.List(ctx)
	if got := entryTimes(list); !slices.EqualFunc(got, written[:2], time.Time.Equal) {
		t.Fatalf("after Prune(2): %v, want %v", got, written[:2])
	}
	if l, _ := other.List(ctx); len(l) != 1 {
		t.Errorf("Prune touched another session's backups: %v", l)
	}
	if _, err := os.Stat(filepath.Join(path, "README")); err != nil {
		t.Errorf("Prune removed an unrelated file: %v", err)
	}
	if removed, _ := d.Prune(ctx, 0); len(removed) != 0 {
		t.Errorf("Prune(0) removed %v", removed)
	}
}

func TestDirMissingIsEmpty(t *testing.T) {
	t.Parallel()
	d := NewDir(filepath.Join(t.TempDir(), "nope"), testSession)
	if l, err := d.List(context.Background()); err != nil || len(l) != 0 {
		t.Fatalf("List of a missing directory = %v, %v", l, err)
	}
}

// failingFile stands in for a disk that fails, or a process that dies,
// after n bytes.
type failingFile struct {
	*os.File
	n int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.n {
		w, _ := f.File.Write(p[:f.n])
		return w, io.ErrShortWrite
	}
	return f.File.Write(p)
}

func TestDirCrashMidWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := t.TempDir()
	d := NewDir(path, testSession)
	if _, err := d.Write(ctx, []byte("good old backup"), t0); err != nil {
		t.Fatal(err)
	}
	d.createTemp = func(dir, pattern string) (tempFile, error) {
		f, err := os.CreateTemp(dir, pattern)
		return &failingFile{File: f, n: 5}, err
	}
	if _, err := d.Write(ctx, []byte("newer backup that never completes"), t0.Add(time.Hour)); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Write on a failing disk = %v, want the write error", err)
	}
	// A crash, unlike an error, leaves its temporary file behind.
	crashed := filepath.Join(path, ".blacksky-default-"+t0.Add(2*time.Hour).Format(timeLayout)+".bkp.tmp-123")
	fresh := filepath.Join(path, ".blacksky-default-"+t0.Add(3*time.Hour).Format(timeLayout)+".bkp.tmp-456")
	for _, p := range []string{crashed, fresh} {
		if err := os.WriteFile(p, []byte("half a"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(crashed, old, old)

	list, err := d.List(ctx)
	if err != nil || len(list) != 1 || !list[0].CreatedAt.Equal(t0) {
		t.Fatalf("List after failed writes = %v, %v; want only the good backup", list, err)
	}
	removed, err := d.Prune(ctx, 5)
	if err != nil || !slices.Equal(removed, []string{crashed}) {
		t.Fatalf("Prune removed %v, %v; want only the stale temporary file %s", removed, err, crashed)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("Prune removed a temporary file that may be a write in progress: %v", err)
	}
	files, _ := os.ReadDir(path)
	if len(files) != 2 {
		t.Errorf("directory holds %d files, want the backup and the fresh temporary file", len(files))
	}
}

func TestEscapeName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{"default": "default", "bot-1_a": "bot-1_a", "a b/c": "a%20b%2Fc", "..": "%2E%2E", "ü": "%C3%BC"}
	for in, want := range tests {
		if got := escapeName(in); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMoveAside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "blacksky.db")
	for _, f := range []string{path, path + "-wal"} {
		os.WriteFile(f, []byte("x"), 0o600)
	}
	aside, err := MoveAside(path, t0)
	if err != nil || aside != path+".corrupt-20261127T030405Z" {
		t.Fatalf("MoveAside = %q, %v", aside, err)
	}
	for _, f := range []string{aside, aside + "-wal"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s missing: %v", f, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the corrupt file is still in place: %v", err)
	}
}
