package backup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// timeLayout names files so that they sort by time; milliseconds keep a
// scheduled and an on-demand backup of the same second apart.
const timeLayout = "20060102T150405.000Z"

// staleTemp is how old a temporary file must be before Prune takes it for
// the leftover of a crash rather than a write in progress.
const staleTemp = 10 * time.Minute

// Dir keeps one session's backups as files in a directory, named
// blacksky-<session>-<UTC time>.bkp.
type Dir struct {
	path    string
	session string // escaped for file names
	// createTemp is os.CreateTemp; tests replace it to simulate crashes.
	createTemp func(dir, pattern string) (tempFile, error)
}

// tempFile is the part of *os.File that Write uses.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// NewDir returns the backup directory at path for sessionID; the
// directory is created on the first Write.
func NewDir(path, sessionID string) *Dir {
	return &Dir{
		path:    path,
		session: escapeName(sessionID),
		createTemp: func(dir, pattern string) (tempFile, error) {
			return os.CreateTemp(dir, pattern)
		},
	}
}

// Path returns the directory.
func (d *Dir) Path() string { return d.path }

func (d *Dir) prefix() string { return "blacksky-" + d.session + "-" }

// Write stores data as the backup taken at createdAt. The file appears
// under its final name only complete and synced, so a crash leaves at
// worst a temporary file that List ignores and Prune removes.
func (d *Dir) Write(ctx context.Context, data []byte, createdAt time.Time) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("write backup file: %w", err)
	}
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return Entry{}, fmt.Errorf("write backup file: %w", err)
	}
	name := d.prefix() + createdAt.UTC().Format(timeLayout) + ".bkp"
	final := filepath.Join(d.path, name)
	if err := writeAtomic(d.createTemp, final, data); err != nil {
		return Entry{}, err
	}
	return Entry{Source: SourceDir, Path: final, CreatedAt: createdAt.UTC().Truncate(time.Millisecond), Size: int64(len(data))}, nil
}

// WriteFile writes data to path so that a crash leaves either no file or the
// complete, synced one: a temporary file is written, synced and renamed.
func WriteFile(path string, data []byte) error {
	return writeAtomic(func(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }, path, data)
}

func writeAtomic(createTemp func(dir, pattern string) (tempFile, error), final string, data []byte) error {
	dir := filepath.Dir(final)
	f, err := createTemp(dir, "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write backup file: %w", err)
	}
	tmp := f.Name()
	if err := writeSync(f, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write backup file %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write backup file %s: %w", final, err)
	}
	// The rename is durable only once the directory is synced.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write backup file %s: %w", final, err)
	}
	return nil
}

func writeSync(f tempFile, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// List returns the session's backup files, newest first. A missing
// directory holds no backups.
func (d *Dir) List(ctx context.Context) ([]Entry, error) {
	files, err := os.ReadDir(d.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backup files: %w", err)
	}
	var out []Entry
	for _, f := range files {
		at, ok := d.parseName(f.Name())
		if !ok || !f.Type().IsRegular() {
			continue
		}
		e := Entry{Source: SourceDir, Path: filepath.Join(d.path, f.Name()), CreatedAt: at}
		if info, err := f.Info(); err == nil {
			e.Size = info.Size()
		}
		out = append(out, e)
	}
	sortNewestFirst(out)
	return out, nil
}

// parseName returns the time in a backup file name of this session; the
// time has a fixed length, so session "a" never claims files of "a-b".
func (d *Dir) parseName(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, d.prefix())
	if !ok {
		return time.Time{}, false
	}
	stamp, ok := strings.CutSuffix(rest, ".bkp")
	if !ok || len(stamp) != len(timeLayout) {
		return time.Time{}, false
	}
	at, err := time.Parse(timeLayout, stamp)
	return at, err == nil
}

// Read returns the contents of a backup file.
func (d *Dir) Read(ctx context.Context, e Entry) ([]byte, error) {
	f, err := os.Open(e.Path)
	if err != nil {
		return nil, fmt.Errorf("read backup file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read backup file %s: %w", e.Path, err)
	}
	return data, nil
}

// Prune deletes all but the newest keep backup files of the session, and
// temporary files that crashed writes left behind; keep < 1 deletes none
// of the backups. It returns the files it deleted.
func (d *Dir) Prune(ctx context.Context, keep int) ([]string, error) {
	entries, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	var victims []string
	if keep > 0 && len(entries) > keep {
		for _, e := range entries[keep:] {
			victims = append(victims, e.Path)
		}
	}
	files, _ := os.ReadDir(d.path)
	for _, f := range files {
		if !strings.HasPrefix(f.Name(), "."+d.prefix()) || !strings.Contains(f.Name(), ".bkp.tmp-") {
			continue
		}
		if info, err := f.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			victims = append(victims, filepath.Join(d.path, f.Name()))
		}
	}
	var removed []string
	var errs []error
	for _, p := range victims {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := syncDir(d.path); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("prune backup files: %w", errors.Join(errs...))
	}
	return removed, nil
}

// escapeName makes a session ID safe and unambiguous in a file name: bytes
// other than letters, digits, '_' and '-' become %XX.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func sortNewestFirst(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		// Same time: the database copy first, then the higher row id.
		if a.Source != b.Source {
			if a.Source == SourceDB {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.ID, a.ID)
	})
}
