package sqlitedb

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
)

// ErrFileGone is the error of a write that SQLite committed into a database
// file that its path no longer names: the file (or its directory) was deleted
// or replaced while open. SQLite keeps writing into the unlinked file, and
// everything written there is lost when the process ends; the write is
// reported failed so that nobody is told it was stored (issue 13, case 5: a
// deleted data directory kept enqueues answering 202, and a restart lost all
// of them).
var ErrFileGone = errors.New("the database file was deleted or replaced while open")

// ErrDamaged is Health's error once SQLite reported the file damaged
// ("database disk image is malformed", "not a database"): that does not heal.
var ErrDamaged = errors.New("the database file is damaged")

// files watches the database file a connector opens.
type files struct {
	path   string // "" for an in-memory database
	once   sync.Once
	opened os.FileInfo // the file the first connection opened

	mu     sync.Mutex
	damage error // the first "database disk image is malformed" or "not a database" seen

	durableCommits atomic.Int64
}

// newFiles reads the file path out of a "file:PATH?..." data source name.
func newFiles(dsn string) *files {
	path, query, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if path == "" || path == ":memory:" || strings.Contains(query, "mode=memory") {
		path = ""
	}
	return &files{path: path}
}

// opening remembers the file the first connection found.
func (f *files) opening() {
	if f.path == "" {
		return
	}
	f.once.Do(func() { f.opened, _ = os.Stat(f.path) })
}

// check reports ErrFileGone when the path no longer names the file opened.
func (f *files) check() error {
	if f.path == "" || f.opened == nil {
		return nil
	}
	now, err := os.Stat(f.path)
	if err != nil || !os.SameFile(now, f.opened) {
		return fmt.Errorf("%w: %s", ErrFileGone, f.path)
	}
	return nil
}

// SQLite's primary result codes for a damaged file (sqlite3.h).
const (
	sqliteCorrupt = 11
	sqliteNotADB  = 26
)

// note remembers err if it says the file is damaged: that does not heal.
func (f *files) note(err error) {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return
	}
	if c := se.Code() & 0xff; c != sqliteCorrupt && c != sqliteNotADB {
		return
	}
	f.mu.Lock()
	if f.damage == nil {
		f.damage = err
	}
	f.mu.Unlock()
}

// Health reports what is known to be wrong with the files of db, a database
// from Open: its file deleted or replaced (ErrFileGone), or damage SQLite
// reported to any statement since it was opened. It is nil for other
// databases.
func Health(db *sql.DB) error {
	d, ok := db.Driver().(*sqliteDriver)
	if !ok {
		return nil
	}
	if err := d.files.check(); err != nil {
		return err
	}
	d.files.mu.Lock()
	defer d.files.mu.Unlock()
	if d.files.damage != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, d.files.damage)
	}
	return nil
}

// sqliteDriver is modernc's driver, with the connector's files beside it
// for Health.
type sqliteDriver struct {
	*sqlite.Driver
	files *files
}
