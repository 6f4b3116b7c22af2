package sqlitedb

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
)

// Conn is a driver connection whose ExecContext and QueryContext run
// single statements through cached prepared statements, and which queues
// for the database's writer turn before writing. Like every driver.Conn it
// is used by one goroutine at a time: database/sql holds the connection's
// lock around every call, Rows.Close included.
type Conn struct {
	base    driver.Conn
	size    int
	lru     list.List // of *entry, most recently used first
	byQuery map[string]*list.Element
	writer  *writer
	files   *files
	inTx    bool // a transaction holds the writer turn
	// syncLevel is the connection's own synchronous level, once read
	// (durable.go); 0 until then, -1 for OFF.
	syncLevel int
}

type entry struct {
	query string
	stmt  driver.Stmt
	busy  bool // rows of it are open; a second use would reset them
}

// errNotCached sends a call down the connection's own path.
var errNotCached = errors.New("statement not cached")

// get returns the cached statement for query, preparing it if needed, or
// errNotCached when the query is a script or its statement is in use.
func (c *Conn) get(ctx context.Context, query string) (*entry, error) {
	if c.size <= 0 || strings.Contains(strings.TrimRight(query, "; \t\r\n"), ";") {
		return nil, errNotCached
	}
	if el, ok := c.byQuery[query]; ok {
		e := el.Value.(*entry)
		if e.busy {
			return nil, errNotCached
		}
		c.lru.MoveToFront(el)
		return e, nil
	}
	if c.lru.Len() >= c.size {
		last := c.lru.Back()
		old := last.Value.(*entry)
		if old.busy {
			return nil, errNotCached
		}
		c.lru.Remove(last)
		delete(c.byQuery, old.query)
		if err := old.stmt.Close(); err != nil {
			return nil, err
		}
	}
	stmt, err := prepare(ctx, c.base, query)
	if err != nil {
		return nil, err
	}
	_, execs := stmt.(driver.StmtExecContext)
	_, queries := stmt.(driver.StmtQueryContext)
	if !execs || !queries {
		stmt.Close()
		return nil, errNotCached
	}
	e := &entry{query: query, stmt: stmt}
	c.byQuery[query] = c.lru.PushFront(e)
	return e, nil
}

func prepare(ctx context.Context, conn driver.Conn, query string) (driver.Stmt, error) {
	if p, ok := conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return conn.Prepare(query)
}

// ExecContext runs query through its cached statement. A write outside a
// transaction commits when it returns, so it is checked like a commit.
func (c *Conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	autocommit := !c.inTx && isWrite(query)
	if autocommit {
		defer c.writer.acquire(ctx)()
		restore, err := c.beginDurable(ctx)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	res, err := c.exec(ctx, query, args)
	c.files.note(err)
	if err == nil && autocommit {
		err = c.files.check()
	}
	return res, err
}

func (c *Conn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, err := c.get(ctx, query)
	if errors.Is(err, errNotCached) {
		if ex, ok := c.base.(driver.ExecerContext); ok {
			return ex.ExecContext(ctx, query, args)
		}
		return nil, driver.ErrSkip
	}
	if err != nil {
		return nil, err
	}
	return e.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext runs query through its cached statement, which stays
// reserved until the rows are closed; so does the writer turn of a
// statement that writes (INSERT … RETURNING).
func (c *Conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	release := func() {}
	if !c.inTx && isWrite(query) {
		turn := c.writer.acquire(ctx)
		restore, err := c.beginDurable(ctx)
		if err != nil {
			turn()
			return nil, err
		}
		release = func() { restore(); turn() }
	}
	rows, e, err := c.query(ctx, query, args)
	if err != nil {
		c.files.note(err)
		release()
		return nil, err
	}
	return &Rows{Rows: rows, done: func() {
		if e != nil {
			e.busy = false
		}
		release()
	}}, nil
}

func (c *Conn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, *entry, error) {
	e, err := c.get(ctx, query)
	if errors.Is(err, errNotCached) {
		q, ok := c.base.(driver.QueryerContext)
		if !ok {
			return nil, nil, driver.ErrSkip
		}
		rows, err := q.QueryContext(ctx, query, args)
		return rows, nil, err
	}
	if err != nil {
		return nil, nil, err
	}
	rows, err := e.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	e.busy = true
	return rows, e, nil
}

// Prepare prepares an uncached statement, for callers that manage their own.
func (c *Conn) Prepare(query string) (driver.Stmt, error) { return c.base.Prepare(query) }

// PrepareContext prepares an uncached statement, for callers that manage their own.
func (c *Conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return prepare(ctx, c.base, query)
}

// Begin starts a transaction.
func (c *Conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx takes the writer turn and starts a transaction, which keeps the
// turn until it ends: the database is opened with _txlock=immediate, so
// every transaction takes SQLite's write lock when it begins.
func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	release := c.writer.acquire(ctx)
	restore, err := c.beginDurable(ctx)
	if err != nil {
		release()
		return nil, err
	}
	var tx driver.Tx
	if b, ok := c.base.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.base.Begin()
	}
	if err != nil {
		restore()
		release()
		return nil, err
	}
	c.inTx = true
	var once sync.Once
	end := func() {
		once.Do(func() {
			c.inTx = false
			restore()
			release()
		})
	}
	return &Tx{base: tx, files: c.files, done: end}, nil
}

// Tx is a transaction holding the writer turn until it ends.
type Tx struct {
	base  driver.Tx
	files *files
	done  func()
}

// Commit commits, checks that it went into the file the path names, and
// gives up the writer turn.
func (t *Tx) Commit() error {
	defer t.done()
	err := t.base.Commit()
	t.files.note(err)
	if err == nil {
		err = t.files.check()
	}
	return err
}

// Rollback rolls back and gives up the writer turn.
func (t *Tx) Rollback() error {
	defer t.done()
	return t.base.Rollback()
}

// Close finalizes the cached statements and closes the connection.
func (c *Conn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		errs = append(errs, el.Value.(*entry).stmt.Close())
	}
	c.lru.Init()
	clear(c.byQuery)
	return errors.Join(append(errs, c.base.Close())...)
}

// Ping checks the connection when the driver can.
func (c *Conn) Ping(ctx context.Context) error {
	if p, ok := c.base.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession passes database/sql's reset on to the driver.
func (c *Conn) ResetSession(ctx context.Context) error {
	if r, ok := c.base.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid asks the driver whether the connection may be reused.
func (c *Conn) IsValid() bool {
	if v, ok := c.base.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Rows are a statement's results; closing them frees the cached statement
// and the writer turn they hold, if any.
type Rows struct {
	driver.Rows
	done func()
}

// Close closes the rows and frees what they hold.
func (r *Rows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

// The column type methods pass on what the driver knows, and otherwise
// answer as database/sql does for a driver without them.

// ColumnTypeDatabaseTypeName is the driver's type name of column i.
func (r *Rows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

// ColumnTypeLength is the length of variable-length column i.
func (r *Rows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

// ColumnTypeNullable reports whether column i may be null.
func (r *Rows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

// ColumnTypePrecisionScale is the precision and scale of decimal column i.
func (r *Rows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

// ColumnTypeScanType is the Go type column i scans into.
func (r *Rows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

// HasNextResultSet reports whether another result set follows.
func (r *Rows) HasNextResultSet() bool {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

// NextResultSet advances to the next result set.
func (r *Rows) NextResultSet() error {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}
