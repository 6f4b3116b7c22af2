// Package sqlitedb opens SQLite databases (modernc.org/sqlite) as blacksky
// needs them under load. Two things are added in the driver, so they
// apply to every user of the *sql.DB, whatsmeow's store included:
//
//   - Each connection keeps its prepared statements. The driver parses
//     every statement anew, and whatsmeow's store and our queue send it the
//     same few dozen statements thousands of times a minute: parsing was a
//     sixth of a busy bot's CPU time.
//   - Writers queue for their turn in the process. SQLite has one writer at
//     a time, and a connection that finds the database locked polls it with
//     sleeps of 1 to 100 ms (busy_timeout); a queue hands the turn over at
//     once, so a message's Signal session write is not kept waiting behind
//     a sleep.
//
// And every write that commits is checked to have gone into the file its
// path still names (ErrFileGone), and damage SQLite reports is remembered
// for Health.
package sqlitedb

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// Options tunes Open; zero fields take the defaults.
type Options struct {
	// CacheSize is how many statements each connection keeps; default 128.
	CacheSize int
	// IdleConns is how many idle connections, and their caches, are kept; default 16.
	IdleConns int
}

// Open returns a database on dsn, a modernc.org/sqlite data source name
// that should set _txlock=immediate, so that transactions take their
// writer turn when they begin, as they take SQLite's lock.
func Open(dsn string, opts Options) *sql.DB {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 128
	}
	if opts.IdleConns <= 0 {
		opts.IdleConns = 16
	}
	db := sql.OpenDB(&connector{dsn: dsn, size: opts.CacheSize, writer: newWriter(), files: newFiles(dsn)})
	// database/sql keeps two idle connections by default and would close
	// the others, caches and all, after every burst.
	db.SetMaxIdleConns(opts.IdleConns)
	return db
}

type connector struct {
	dsn    string
	size   int
	writer *writer
	files  *files
	driver sqlite.Driver
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		c.files.note(err)
		return nil, err
	}
	c.files.opening()
	return newConn(conn, c.size, c.writer, c.files), nil
}

func (c *connector) Driver() driver.Driver { return &sqliteDriver{Driver: &c.driver, files: c.files} }

func newConn(base driver.Conn, size int, w *writer, f *files) *Conn {
	return &Conn{base: base, size: size, byQuery: make(map[string]*list.Element), writer: w, files: f}
}

// maxWriterWait is how long a writer queues before it goes to SQLite
// anyway, whose busy_timeout then decides: a turn held that long means a
// stuck transaction, and waiting here forever would hide it.
const maxWriterWait = 10 * time.Second

// writer is the database's one writer turn.
type writer struct{ turn chan struct{} }

func newWriter() *writer { return &writer{turn: make(chan struct{}, 1)} }

// acquire waits for the turn and returns its release; without the turn
// (ctx ended, or maxWriterWait passed) the release does nothing.
func (w *writer) acquire(ctx context.Context) (release func()) {
	select {
	case w.turn <- struct{}{}:
		return w.release
	default:
	}
	t := time.NewTimer(maxWriterWait)
	defer t.Stop()
	select {
	case w.turn <- struct{}{}:
		return w.release
	case <-ctx.Done():
	case <-t.C:
	}
	return func() {}
}

func (w *writer) release() { <-w.turn }

// isWrite reports whether a statement outside a transaction may write, by
// its first keyword; reads run beside the writer under WAL.
func isWrite(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	for strings.HasPrefix(q, "--") || strings.HasPrefix(q, "/*") {
		end := "\n"
		if strings.HasPrefix(q, "/*") {
			end = "*/"
		}
		i := strings.Index(q, end)
		if i < 0 {
			return false
		}
		q = strings.TrimLeft(q[i+len(end):], " \t\r\n(")
	}
	word, _, _ := strings.Cut(q, " ")
	word, _, _ = strings.Cut(word, "\n")
	switch strings.ToUpper(strings.TrimSpace(word)) {
	case "SELECT", "PRAGMA", "EXPLAIN", "VALUES", "":
		return false
	}
	return true // INSERT, UPDATE, DELETE, REPLACE, WITH, CREATE, DROP, ALTER, VACUUM, ...
}
