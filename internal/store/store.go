// Package store opens the one database that holds everything blacksky keeps:
// whatsmeow's session store and our own tables, on SQLite or PostgreSQL,
// with versioned migrations that are safe when two processes start at once.
//
// Only the bot creates a database (Mode Create): the tools that queue into
// it open only one a bot has set up (Existing), and blacksky doctor opens
// it so that nothing can be written (ReadOnly), so that neither leaves a
// database behind that a bot, or its operator, could take for the real one.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/store/sqlstore/upgrades"

	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

// Engine names a database engine.
type Engine string

// The supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// ErrCorrupt is returned when the SQLite file exists but is not a sound database.
var ErrCorrupt = errors.New("database file is corrupt")

// ErrConfig is returned when PostgreSQL's driver refuses the connection
// settings (DATABASE_URL or a PG* variable) before any connection is tried:
// the operator's configuration to fix, not a database that is down.
var ErrConfig = errors.New("bad database configuration")

// ErrNoDatabase is returned, by the modes other than Create, for a database
// no bot has set up: no SQLite file at the path, or, with Existing, no
// blacksky tables in it.
var ErrNoDatabase = errors.New("no blacksky database")

// Mode is what Open may do to the database it is pointed at.
type Mode int

// The modes.
const (
	// Create makes the SQLite file and its directory when they are
	// missing: what the bot itself (blacksky run) needs.
	Create Mode = iota
	// Existing opens only a database a bot has set up, its tables there,
	// and creates nothing: a tool that queues into a database no bot reads
	// (blacksky send) would report success for a message never sent.
	Existing
	// ReadOnly opens an existing database (ErrNoDatabase when the SQLite
	// file is missing) so that nothing can be written to it, whatever its
	// schema: blacksky doctor, which must change nothing it looks at.
	ReadOnly
)

// Options selects and configures the database.
type Options struct {
	// PostgresURL selects PostgreSQL when set.
	PostgresURL string
	// SQLitePath is the database file used when PostgresURL is empty.
	SQLitePath string
	Logger     *slog.Logger
	Mode       Mode
}

// Store is an open database with whatsmeow's session container on top.
type Store struct {
	db        *sql.DB
	kind      Engine
	sqlite    string
	container *sqlstore.Container
	wadb      *dbutil.Database // whatsmeow's handle on db
	where     string           // the database, for messages: a path, or host and name (never the password)
	log       *slog.Logger
	health    health
}

// Open connects to the database and checks that it answers; apart from
// creating a missing SQLite file in the Create mode, it does not change
// anything: call Migrate for that.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := open(ctx, opts)
	if err != nil || opts.Mode != Existing {
		return s, err
	}
	state, err := s.Schema(ctx)
	if err == nil && state == SchemaNone {
		err = noDatabase(s.where + " has no blacksky tables")
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log}
	var err error
	if opts.PostgresURL != "" {
		s.kind = Postgres
		s.db, s.where, err = openPostgres(ctx, opts.PostgresURL, opts.Mode == ReadOnly)
	} else {
		s.kind, s.sqlite, s.where = SQLite, opts.SQLitePath, opts.SQLitePath
		s.db, err = openSQLite(ctx, opts.SQLitePath, opts.Mode)
	}
	if err != nil {
		return nil, err
	}
	dialect := "postgres"
	if s.kind == SQLite {
		dialect = "sqlite3"
	}
	// What sqlstore.NewWithDB does, keeping the handle for sessionWriter.
	if s.wadb, err = dbutil.NewWithDB(s.db, dialect); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open whatsmeow store: %w", err)
	}
	s.wadb.UpgradeTable = upgrades.Table
	s.wadb.VersionTable = "whatsmeow_version"
	s.container = sqlstore.NewWithWrappedDB(s.wadb, logging.WhatsApp(log).Sub("Store"))
	return s, nil
}

// Where names the database for messages: the SQLite file, or PostgreSQL's
// database, host and port; never a password.
func (s *Store) Where() string { return s.where }

// Engine reports which engine the store runs on.
func (s *Store) Engine() Engine { return s.kind }

// SQLitePath is the database file on SQLite, empty on PostgreSQL.
func (s *Store) SQLitePath() string { return s.sqlite }

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

// Container returns whatsmeow's device store on this database.
func (s *Store) Container() *sqlstore.Container { return s.container }

// Close closes the database.
func (s *Store) Close() error {
	return s.db.Close()
}

func openSQLite(ctx context.Context, path string, mode Mode) (*sql.DB, error) {
	if mode != Create {
		// SQLite would create a missing file, and an empty one is a new
		// database to it, whose first pragma writes the header.
		info, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
			return nil, noDatabase("no database at " + path)
		}
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
	}
	var dsn string
	if mode == ReadOnly {
		dsn = readOnlyDSN(path)
	} else {
		if err := checkWritable(path); err != nil {
			return nil, err
		}
		// WAL lets readers (health checks) run beside the writer; IMMEDIATE
		// transactions take the write lock up front so two writers queue on
		// busy_timeout instead of failing with SQLITE_BUSY on lock upgrade.
		dsn = "file:" + path + "?_txlock=immediate" +
			"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
			"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db := sqlitedb.Open(dsn, sqlitedb.Options{})
	if err := checkSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// readOnlyDSN opens path so that nothing is written to it or beside it.
// mode=ro alone is not enough: reading a WAL database needs its -wal and
// -shm files, which SQLite creates (and leaves) when they are missing. When
// both are there (a bot has the database open, or stopped without cleaning
// up) they are the bot's and mode=ro shares them, seeing its latest
// commits; when they are not, no bot has uncommitted-to-file data and
// immutable=1 reads the file alone, creating nothing and taking no locks.
func readOnlyDSN(path string) string {
	for _, name := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(name); err != nil {
			return "file:" + path + "?mode=ro&immutable=1"
		}
	}
	return "file:" + path + "?mode=ro&_pragma=busy_timeout(10000)"
}

// checkSQLite refuses a damaged file before anything writes to it, so a
// corrupt database is reported and left as it is for recovery.
func checkSQLite(ctx context.Context, db *sql.DB) error {
	var result string
	err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&result)
	if err != nil {
		if isNotADatabase(err) {
			return fmt.Errorf("%w: %v; move the file away or restore a backup", ErrCorrupt, err)
		}
		return err
	}
	if result != "ok" {
		return fmt.Errorf("%w: quick_check says %q; move the file away or restore a backup", ErrCorrupt, result)
	}
	return nil
}

func isNotADatabase(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") || strings.Contains(msg, "SQLITE_CORRUPT")
}

// postgresConns is how many connections to PostgreSQL a process opens at
// most: the queue's workers, whatsmeow's store, the API and the lease
// share them.
const postgresConns = 10

// openPostgres connects to rawURL and returns the database with its name
// for messages. readOnly makes every transaction of the session read-only,
// so that nothing can write through it, by mistake either.
func openPostgres(ctx context.Context, rawURL string, readOnly bool) (*sql.DB, string, error) {
	cfg, err := pgx.ParseConfig(withSSLMode(rawURL))
	if err != nil {
		return nil, "", parseProblem(err, rawURL)
	}
	where := fmt.Sprintf("PostgreSQL database %q on %s", cfg.Database, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresConns)
	// Keep them all: database/sql's default of two idle connections would
	// close the rest after every burst, and PostgreSQL starts a process
	// for every new one.
	db.SetMaxIdleConns(postgresConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, "", connectError{where: where, err: err}
	}
	return db, where, nil
}

// withSSLMode adds sslmode=require for remote hosts when neither the URL nor
// PGSSLMODE chose a mode: Heroku Postgres refuses plain connections and its
// certificates are not signed by a public CA, so "require" (encrypt, do not
// verify) is what works there; loopback keeps pgx's default "prefer".
func withSSLMode(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	if q.Get("sslmode") != "" || os.Getenv("PGSSLMODE") != "" || isLocalHost(u.Hostname()) {
		return rawURL
	}
	q.Set("sslmode", "require")
	u.RawQuery = q.Encode()
	return u.String()
}

func isLocalHost(host string) bool {
	if host == "" || host == "localhost" || strings.HasPrefix(host, "/") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
