// Package config reads blacksky's settings from environment variables and
// validates them, so a bad value stops the program with one line per wrong
// variable that says what is wrong and how to fix it. Load reports every
// invalid variable it finds (Errors), not only the first: 'blacksky doctor'
// lists them all, and a fix-one-rerun loop wastes a deploy per variable.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/blacksky-bot/blacksky/internal/phone"
)

// Config holds every setting of a blacksky process.
type Config struct {
	DatabaseURL string // postgres:// URL; empty means SQLite in DataDir
	DataDir     string
	Port        int      // the port to listen on: PORT, or LISTEN_ADDR's when it names one
	ListenAddr  string   // host:port for net.Listen; ":PORT" (all interfaces) by default
	Owners      []string // phone numbers in international form, digits only
	BotName     string
	Prefix      string
	SessionID   string
	APIToken    string
	LogLevel    slog.Level
	LogFormat   string // "text" or "json"
	MaxMemoryMB int    // 0 means: derive from the container's limit
	Sandbox     string // base URL of a blacksky sandbox; empty in production
	// SandboxTrust is the trust file that sandbox wrote (WA_SANDBOX_TRUST),
	// required with Sandbox: a bot never takes trust from the network.
	SandboxTrust string
	PairPhone    string // ask for a pairing code for this number instead of a QR code
	// WAVersion pins the WhatsApp Web client version presented to WhatsApp
	// (WA_VERSION, e.g. 2.3000.1012345678); zero means whatsmeow's built-in
	// one, replaced by WhatsApp Web's current one when WhatsApp refuses it.
	WAVersion [3]uint32

	ShutdownTimeout time.Duration

	ReconnectBaseDelay  time.Duration
	ReconnectMaxDelay   time.Duration
	ReconnectMaxRetries int // 0 means forever
	ReconnectProbe      time.Duration
	ReconnectAlertAfter time.Duration
	KeepAliveMaxFail    time.Duration
	AckTimeout          time.Duration
	SilenceTimeout      time.Duration // 0 means off
	ReplacedBackoff     time.Duration
	LeaseInterval       time.Duration

	OutgoingMaxAttempts int
	OutgoingTTL         time.Duration
	OutgoingMaxPending  int
	OutgoingRetryBase   time.Duration
	OutgoingRetryMax    time.Duration
	OutgoingRetention   time.Duration
	SendRatePerMinute   int
	SendChatGap         time.Duration
	OutgoingSendTimeout time.Duration
	// OutgoingDeliveryTimeout is how long a sent message may wait for a
	// delivery receipt before it is flagged undelivered; 0 means off.
	OutgoingDeliveryTimeout time.Duration

	EncryptionKey  string        // SESSION_ENCRYPTION_KEY; empty disables backups
	BackupDir      string        // default $DATA_DIR/backups
	BackupKeep     int           // backups kept in each place
	BackupInterval time.Duration // 0 disables scheduled backups

	WebhookURL         string // empty: no webhook
	WebhookSecret      string
	WebhookMaxAttempts int
	WebhookTimeout     time.Duration

	// Ignored lists variables of the original bot that blacksky accepts but
	// does not need, so start-up can say so instead of silently ignoring them.
	Ignored []string
	// Renamed maps each old variable name that was read (its new name
	// unset) to its new name, so start-up can say which to use.
	Renamed map[string]string
}

// Error is a configuration problem with one variable.
type Error struct {
	Var     string
	Value   string
	Problem string
	Example string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s=%q: %s (example: %s=%s)", e.Var, e.Value, e.Problem, e.Var, e.Example)
}

// Errors is every problem Load found, one per variable, in the order the
// variables are read. errors.As finds the first *Error in it.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As and errors.Is look at each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Getenv looks up one environment variable; os.LookupEnv satisfies it.
type Getenv func(name string) (string, bool)

// ignoredVars are settings of the original bot that have no meaning here.
var ignoredVars = []string{"KEEP_ALIVE_URL", "ENABLE_HEALTH_CHECK", "LANGUAGE"}

// Load reads and validates the configuration; every invalid variable is
// reported, as Errors. A variable that depends on another (RECONNECT_MAX_DELAY
// on RECONNECT_BASE_DELAY) is checked against it only when both are valid,
// so one mistake is reported once.
func Load(env Getenv) (*Config, error) {
	p := parser{env: env}
	if _, ok := p.get("DATABASE_URL"); ok {
		p.pgSSLMode("PGSSLMODE")
	}
	c := &Config{
		DatabaseURL: p.databaseURL("DATABASE_URL"),
		DataDir:     p.str("DATA_DIR", "./data"),
		Port:        p.port("PORT", 8080),
		Owners:      p.phones("OWNER_NUMBER"),
		BotName:     p.str("BOT_NAME", "blacksky"),
		Prefix:      p.prefix("PREFIX", "."),
		SessionID:   p.sessionID("SESSION_ID", "default"),
		APIToken:    p.token("API_TOKEN"),
		LogLevel:    p.level("LOG_LEVEL", slog.LevelInfo),
		LogFormat:   p.oneOf("LOG_FORMAT", "text", "text", "json"),
		MaxMemoryMB: p.intRange("MAX_MEMORY_MB", 0, 0, 1<<20, "512"),
		Sandbox:     p.httpURL("WA_SANDBOX"),
		PairPhone:   p.phone("PAIR_PHONE"),
		WAVersion:   p.waVersion("WA_VERSION"),

		ShutdownTimeout: p.duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, 10*time.Minute, "25s"),

		// The original bot's RECONNECT_INTERVAL and MAX_RECONNECT_RETRIES
		// mean the same things; the new names win when both are set.
		ReconnectBaseDelay: p.duration("RECONNECT_BASE_DELAY",
			unlessSet(&p, "RECONNECT_BASE_DELAY", func() time.Duration {
				return p.millis("RECONNECT_INTERVAL", time.Second, 10*time.Millisecond, time.Hour)
			}), 10*time.Millisecond, time.Hour, "1s"),
		ReconnectMaxDelay: p.duration("RECONNECT_MAX_DELAY", time.Minute, 10*time.Millisecond, 24*time.Hour, "60s"),
		ReconnectMaxRetries: p.intRange("RECONNECT_MAX_RETRIES",
			unlessSet(&p, "RECONNECT_MAX_RETRIES", func() int {
				return p.intRange("MAX_RECONNECT_RETRIES", 0, 0, 1<<30, "0")
			}), 0, 1<<30, "0"),
		ReconnectProbe:      p.duration("RECONNECT_PROBE_INTERVAL", 500*time.Millisecond, 0, time.Minute, "500ms"),
		ReconnectAlertAfter: p.duration("RECONNECT_ALERT_AFTER", 5*time.Minute, 0, 24*time.Hour, "5m"),
		KeepAliveMaxFail:    p.duration("KEEPALIVE_MAX_FAIL", time.Minute, 10*time.Second, time.Hour, "60s"),
		AckTimeout:          p.duration("ACK_TIMEOUT", 15*time.Second, time.Second, 5*time.Minute, "15s"),
		SilenceTimeout:      p.duration("SILENCE_TIMEOUT", 20*time.Minute, 0, 24*time.Hour, "20m"),
		ReplacedBackoff:     p.duration("REPLACED_BACKOFF", 30*time.Second, 30*time.Second, 24*time.Hour, "30s"),
		LeaseInterval:       p.duration("LEASE_INTERVAL", time.Second, 50*time.Millisecond, time.Minute, "1s"),

		OutgoingMaxAttempts: p.intRange(p.renamed("OUTGOING_MAX_ATTEMPTS"), 10, 1, 1000, "10"),
		OutgoingTTL:         p.duration(p.renamed("OUTGOING_TTL"), 24*time.Hour, time.Minute, 30*24*time.Hour, "24h"),
		OutgoingMaxPending:  p.intRange(p.renamed("OUTGOING_MAX_PENDING"), 10000, 1, 10_000_000, "10000"),
		// The original bot's NOTIFICATION_RETRY_INTERVAL is the same knob.
		OutgoingRetryBase: p.duration(p.renamed("OUTGOING_RETRY_BASE_DELAY"),
			unlessSet(&p, p.renamed("OUTGOING_RETRY_BASE_DELAY"), func() time.Duration {
				return p.millis("NOTIFICATION_RETRY_INTERVAL", 2*time.Second, 10*time.Millisecond, time.Hour)
			}), 10*time.Millisecond, time.Hour, "2s"),
		OutgoingRetryMax:        p.duration(p.renamed("OUTGOING_RETRY_MAX_DELAY"), 5*time.Minute, 10*time.Millisecond, 24*time.Hour, "5m"),
		OutgoingRetention:       p.duration(p.renamed("OUTGOING_RETENTION"), 7*24*time.Hour, time.Hour, 365*24*time.Hour, "168h"),
		SendRatePerMinute:       p.intRange("SEND_RATE_PER_MINUTE", 20, 0, 100000, "20"),
		SendChatGap:             p.duration("SEND_CHAT_GAP", time.Second, 0, time.Hour, "1s"),
		OutgoingSendTimeout:     p.duration(p.renamed("OUTGOING_SEND_TIMEOUT"), 30*time.Second, 100*time.Millisecond, 5*time.Minute, "30s"),
		OutgoingDeliveryTimeout: p.duration(p.renamed("OUTGOING_DELIVERY_TIMEOUT"), 10*time.Minute, 0, 7*24*time.Hour, "10m"),
	}
	c.Renamed = p.renames
	c.EncryptionKey = p.secret("SESSION_ENCRYPTION_KEY", 16, "a long passphrase (generate one with: openssl rand -base64 32)")
	c.BackupDir = p.str("BACKUP_DIR", filepath.Join(c.DataDir, "backups"))
	c.BackupKeep = p.intRange("BACKUP_KEEP", 5, 1, 1000, "5")
	// The original bot wrote BACKUP_INTERVAL in minutes and could switch
	// backups off with ENABLE_SESSION_BACKUP=false.
	c.BackupInterval = p.minutes("BACKUP_INTERVAL", 30*time.Minute, time.Minute, 7*24*time.Hour)
	if !p.boolean("ENABLE_SESSION_BACKUP", true) {
		c.BackupInterval = 0
	}
	c.WebhookURL = p.webhookURL("WEBHOOK_URL")
	c.WebhookSecret = p.secret("WEBHOOK_SECRET", 16, "a long random string (openssl rand -hex 32)")
	c.WebhookMaxAttempts = p.intRange("WEBHOOK_MAX_ATTEMPTS", 12, 1, 1000, "12")
	c.WebhookTimeout = p.duration("WEBHOOK_TIMEOUT", 10*time.Second, 100*time.Millisecond, 5*time.Minute, "10s")
	c.ListenAddr, c.Port = p.listenAddr("LISTEN_ADDR", c.Port)
	c.SandboxTrust = p.str("WA_SANDBOX_TRUST", "")
	if p.valid("WA_SANDBOX") && c.Sandbox != "" && c.SandboxTrust == "" {
		p.fail("WA_SANDBOX_TRUST", "", "must name the trust file blacksky-sandbox wrote (it prints the path at start) when WA_SANDBOX is set", "/tmp/blacksky-sandbox-trust.json")
	}
	if p.valid("WA_SANDBOX") && c.Sandbox == "" && c.SandboxTrust != "" {
		p.fail("WA_SANDBOX_TRUST", c.SandboxTrust, "is set without WA_SANDBOX; set both to use a sandbox, or neither", "/tmp/blacksky-sandbox-trust.json")
	}
	if p.valid("WEBHOOK_URL", "WEBHOOK_SECRET") && c.WebhookURL != "" && c.WebhookSecret == "" {
		// An unsigned webhook lets anyone who guesses the URL forge events.
		p.fail("WEBHOOK_SECRET", "", "must be set (at least 16 characters) when WEBHOOK_URL is set, so receivers can verify events", "(openssl rand -hex 32)")
	}
	if p.valid("RECONNECT_MAX_DELAY", "RECONNECT_BASE_DELAY", "RECONNECT_INTERVAL") && c.ReconnectMaxDelay < c.ReconnectBaseDelay {
		p.fail("RECONNECT_MAX_DELAY", c.ReconnectMaxDelay.String(), "must not be shorter than RECONNECT_BASE_DELAY ("+c.ReconnectBaseDelay.String()+")", "60s")
	}
	if _, set := p.get("ACK_TIMEOUT"); !set && c.AckTimeout >= c.OutgoingSendTimeout {
		c.AckTimeout = c.OutgoingSendTimeout / 2
	}
	if sendTimeout := p.renamed("OUTGOING_SEND_TIMEOUT"); p.valid("ACK_TIMEOUT", sendTimeout) && c.AckTimeout >= c.OutgoingSendTimeout {
		// A send attempt ends at OUTGOING_SEND_TIMEOUT: a longer wait for the ack would never run out.
		p.fail("ACK_TIMEOUT", c.AckTimeout.String(), "must be shorter than "+sendTimeout+" ("+c.OutgoingSendTimeout.String()+")", "15s")
	}
	if p.valid("SILENCE_TIMEOUT") && c.SilenceTimeout > 0 && c.SilenceTimeout < time.Minute {
		// Shorter would redial healthy quiet connections over and over.
		p.fail("SILENCE_TIMEOUT", c.SilenceTimeout.String(), "must be 0 (off) or at least 1m", "20m")
	}
	for _, name := range ignoredVars {
		if _, ok := env(name); ok {
			c.Ignored = append(c.Ignored, name)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return c, nil
}

// UsesPostgres reports whether the configuration selects PostgreSQL.
func (c *Config) UsesPostgres() bool { return c.DatabaseURL != "" }

// BackupsEnabled reports whether session backups are written and read at
// all: only with SESSION_ENCRYPTION_KEY, since they are never in plaintext.
func (c *Config) BackupsEnabled() bool { return c.EncryptionKey != "" }

// ScheduledBackups reports whether the running bot backs up on a schedule
// (BACKUP_INTERVAL, unless ENABLE_SESSION_BACKUP=false); on-demand and
// shutdown backups need only BackupsEnabled.
func (c *Config) ScheduledBackups() bool { return c.BackupsEnabled() && c.BackupInterval > 0 }

// SQLitePath is where the SQLite database lives when PostgreSQL is not used.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "blacksky.db") }

// parser collects the errors so Load reads as a list of fields.
type parser struct {
	env     Getenv
	errs    Errors
	renames map[string]string // old name read -> new name
}

// oldNames are the earlier names of renamed variables, which keep working.
// NOTIFY_* named the outgoing queue's settings before the one name
// "outgoing" (issue 16).
var oldNames = map[string]string{
	"OUTGOING_MAX_ATTEMPTS":     "NOTIFY_MAX_ATTEMPTS",
	"OUTGOING_TTL":              "NOTIFY_TTL",
	"OUTGOING_MAX_PENDING":      "NOTIFY_MAX_PENDING",
	"OUTGOING_RETRY_BASE_DELAY": "NOTIFY_RETRY_BASE_DELAY",
	"OUTGOING_RETRY_MAX_DELAY":  "NOTIFY_RETRY_MAX_DELAY",
	"OUTGOING_RETENTION":        "NOTIFY_RETENTION",
	"OUTGOING_SEND_TIMEOUT":     "NOTIFY_SEND_TIMEOUT",
	"OUTGOING_DELIVERY_TIMEOUT": "NOTIFY_DELIVERY_TIMEOUT",
}

// renamed is the variable to read for name: its old name when only that
// is set (recorded in renames), else name. Errors then name what was set.
func (p *parser) renamed(name string) string {
	old := oldNames[name]
	if _, ok := p.get(name); ok || old == "" {
		return name
	}
	if _, ok := p.get(old); !ok {
		return name
	}
	if p.renames == nil {
		p.renames = map[string]string{}
	}
	p.renames[old] = name
	return old
}

func (p *parser) get(name string) (string, bool) {
	v, ok := p.env(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// fail records a problem with name; only its first counts, as the variable
// has one value.
func (p *parser) fail(name, value, problem, example string) {
	if p.valid(name) {
		p.errs = append(p.errs, &Error{Var: name, Value: value, Problem: problem, Example: example})
	}
}

// valid reports whether none of names has failed.
func (p *parser) valid(names ...string) bool {
	for _, e := range p.errs {
		if slices.Contains(names, e.Var) {
			return false
		}
	}
	return true
}

// unlessSet reads a fallback (an old variable name) only when name is unset,
// so a leftover old value cannot stop a start that the new name configures.
func unlessSet[T any](p *parser, name string, fallback func() T) T {
	var zero T
	if _, ok := p.get(name); ok {
		return zero
	}
	return fallback()
}

func (p *parser) str(name, def string) string {
	if v, ok := p.get(name); ok {
		return v
	}
	return def
}

func (p *parser) databaseURL(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		// Never echo the value: it usually carries a password.
		p.fail(name, redactURL(v), "must be a postgres:// or postgresql:// URL with a host, or unset for SQLite", "postgres://user:pass@host:5432/db")
		return ""
	}
	// Schemes are case-insensitive, but pgx reads only a lowercase one as a URL.
	v = u.Scheme + v[len(u.Scheme):]
	const example = "postgres://user:pass@host:5432/db?sslmode=require"
	if mode := u.Query().Get("sslmode"); mode != "" && !slices.Contains(sslModes, mode) {
		p.fail(name, redactURL(v), fmt.Sprintf("has sslmode=%q; it must be one of %s", mode, strings.Join(sslModes, ", ")), example)
		return ""
	}
	// What the driver refuses (a bad port, connect_timeout, target_session_attrs)
	// is a configuration problem too, found now rather than at the first connect.
	if _, err := pgx.ParseConfig(v); err != nil && p.valid("PGSSLMODE") {
		p.fail(name, redactURL(v), "is not a connection URL PostgreSQL's driver accepts"+driverProblem(err, u), example)
		return ""
	}
	return v
}

// sslModes are the sslmode values libpq and pgx know.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// driverProblem is what pgx says is wrong with a URL, without the URL it
// quotes (redacted only at its best effort), or nothing when it could
// contain the password.
func driverProblem(err error, u *url.URL) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+len("`: "):]
	}
	if pw, ok := u.User.Password(); (ok && pw != "" && strings.Contains(msg, pw)) || strings.Contains(msg, "`") {
		return ""
	}
	return ": " + strings.Join(strings.Fields(msg), " ")
}

// pgSSLMode checks PGSSLMODE, which the driver reads when the URL names no
// sslmode: a bad one would fail every connection.
func (p *parser) pgSSLMode(name string) {
	if v, ok := p.get(name); ok && !slices.Contains(sslModes, v) {
		p.fail(name, v, "must be one of "+strings.Join(sslModes, ", ")+" (or unset)", "require")
	}
}

var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// redactURL shows only the scheme of a rejected database URL: in a malformed
// URL (a libpq "password=..." string, "postgres:/user:pass@host", a password
// with an unescaped '#' or '/') any other part may be the password.
func redactURL(v string) string {
	scheme, _, ok := strings.Cut(v, "://")
	if !ok || !schemePattern.MatchString(scheme) {
		return "(hidden: not a scheme:// URL)"
	}
	return scheme + "://(rest hidden)"
}

// listenAddr reads LISTEN_ADDR, the address to listen on, and returns it
// as host:port with the port to use. Unset, the bot listens on every
// interface (what Heroku and Docker need) on PORT. An IP address alone
// (127.0.0.1, ::1, [::1]) listens there on PORT. An address with a port
// (127.0.0.1:8080, [::1]:8080, :8080) uses that port, which must then agree
// with PORT if PORT is set: PORT is what a platform says to listen on, and a
// bot on another port silently gets no traffic. Host names are refused:
// one resolves to an address chosen at bind time, which is not what was
// written.
func (p *parser) listenAddr(name string, port int) (string, int) {
	all := net.JoinHostPort("", strconv.Itoa(port))
	v, ok := p.get(name)
	if !ok {
		return all, port
	}
	const example = "127.0.0.1"
	host, portText, err := net.SplitHostPort(v)
	withPort := err == nil
	if !withPort {
		// No port: an IP address alone, IPv6 with or without brackets.
		host = v
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			host = v[1 : len(v)-1]
		}
	}
	if host != "" {
		addr, err := netip.ParseAddr(host)
		if err != nil {
			p.fail(name, v, "must be an IP address to listen on, optionally with :port (127.0.0.1, ::1, 0.0.0.0, 127.0.0.1:8080, [::1]:8080); a host name is not accepted, write its address", example)
			return all, port
		}
		host = addr.String()
	}
	if !withPort {
		return net.JoinHostPort(host, strconv.Itoa(port)), port
	}
	n, err := strconv.Atoi(portText)
	if err != nil || n < 1 || n > 65535 {
		p.fail(name, v, "names a port that is not a number from 1 to 65535", example+":8080")
		return all, port
	}
	if _, set := p.get("PORT"); set && p.valid("PORT") && n != port {
		p.fail(name, v, fmt.Sprintf("names port %d but PORT is %d; give only the address (PORT chooses the port, and platforms such as Heroku set it) or the same port", n, port), example)
		return all, port
	}
	return net.JoinHostPort(host, portText), n
}

func (p *parser) port(name string, def int) int {
	return p.intRange(name, def, 1, 65535, "8080")
}

func (p *parser) intRange(name string, def, lo, hi int, example string) int {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, v, fmt.Sprintf("must be a whole number from %d to %d", lo, hi), example)
		return def
	}
	return n
}

func (p *parser) duration(name string, def, lo, hi time.Duration, example string) time.Duration {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		p.fail(name, v, fmt.Sprintf("must be a Go duration from %s to %s", lo, hi), example)
		return def
	}
	return d
}

// millis reads a duration written either as Go duration or, as the original
// bot wrote it, as a bare number of milliseconds.
func (p *parser) millis(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		// Clamp before multiplying so a huge number cannot overflow into range.
		d, err = time.Duration(min(max(n, -1), int(hi/time.Millisecond)+1))*time.Millisecond, nil
	}
	if err != nil || d < lo || d > hi {
		p.fail(name, v, fmt.Sprintf("must be a number of milliseconds or a Go duration from %s to %s", lo, hi), "5000")
		return def
	}
	return d
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	p.fail(name, v, "must be one of "+strings.Join(allowed, ", "), allowed[0])
	return def
}

func (p *parser) level(name string, def slog.Level) slog.Level {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	var l slog.Level
	if strings.EqualFold(v, "warning") {
		v = "warn"
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, v, "must be debug, info, warn or error", "info")
		return def
	}
	return l
}

func (p *parser) prefix(name, def string) string {
	v, ok := p.env(name)
	if !ok || v == "" {
		return def
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsSpace) >= 0 || utf8.RuneCountInString(v) > 5 {
		p.fail(name, v, "must be 1 to 5 characters (UTF-8) without spaces", ".")
		return def
	}
	return v
}

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func (p *parser) sessionID(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if !sessionIDPattern.MatchString(v) {
		problem := "must be 1 to 64 letters, digits, '.', '_' or '-'; it names this bot's account slot"
		if len(v) > 64 || strings.ContainsAny(v, "~#;!") {
			// Baileys bots put a whole credential blob, or a short
			// "Name~fileid#key" link to one, here; never echo it back.
			problem = "looks like a session string from another bot; blacksky keeps the session in its database and SESSION_ID only names it"
			keep := min(len(v), 8)
			if i := strings.IndexAny(v, "~#;!"); i >= 0 {
				keep = min(keep, i)
			}
			v = v[:keep] + "..."
		}
		p.fail(name, v, problem, "default")
		return def
	}
	return v
}

func (p *parser) token(name string) string {
	if raw, _ := p.env(name); raw != "" && strings.TrimSpace(raw) == "" {
		// Unset would mean "no token": loopback only, without a word.
		p.fail(name, "(only spaces)", "is only spaces; set a real token or unset it", "3f9c...(64 hex characters)")
		return ""
	}
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	if n := utf8.RuneCountInString(v); n < 16 {
		p.fail(name, strings.Repeat("*", n), "must be at least 16 characters (generate one with: openssl rand -hex 32)", "3f9c...(64 hex characters)")
		return ""
	}
	return v
}

// secret reads a value that must never be echoed, of at least min characters.
func (p *parser) secret(name string, min int, example string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	// Characters, not bytes, as internal/backup counts a passphrase.
	if n := utf8.RuneCountInString(v); n < min {
		p.fail(name, strings.Repeat("*", n), fmt.Sprintf("must be at least %d characters", min), example)
		return ""
	}
	return v
}

// minutes reads a duration written as a Go duration or, as the original
// bot wrote it, as a bare number of minutes.
func (p *parser) minutes(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(min(max(n, 0), int(hi/time.Minute)+1))*time.Minute, nil
	}
	if err != nil || d < lo || d > hi {
		p.fail(name, v, fmt.Sprintf("must be a number of minutes or a Go duration from %s to %s", lo, hi), "30")
		return def
	}
	return d
}

func (p *parser) boolean(name string, def bool) bool {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		p.fail(name, v, "must be true or false", "true")
		return def
	}
	return b
}

func (p *parser) webhookURL(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, redactURL(v), "must be an http:// or https:// URL that accepts POSTed JSON", "https://example.org/blacksky-events")
		return ""
	}
	return v
}

func (p *parser) httpURL(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, v, "must be the http:// URL of a running blacksky sandbox", "http://127.0.0.1:7878")
		return ""
	}
	return strings.TrimRight(v, "/")
}

// waVersion reads a WhatsApp Web client version: three dot-separated
// numbers below 2^32, not all zero, as whatsmeow's store.WAVersionContainer
// holds it.
func (p *parser) waVersion(name string) [3]uint32 {
	v, ok := p.get(name)
	if !ok {
		return [3]uint32{}
	}
	var out [3]uint32
	parts := strings.Split(v, ".")
	valid := len(parts) == 3
	for i := 0; valid && i < len(parts); i++ {
		n, err := strconv.ParseUint(parts[i], 10, 32)
		valid = err == nil
		out[i] = uint32(n)
	}
	if !valid || out == [3]uint32{} {
		p.fail(name, v, "must be a WhatsApp Web version, three dot-separated numbers (unset: the built-in version, updated from WhatsApp Web when WhatsApp refuses it)", "2.3000.1012345678")
		return [3]uint32{}
	}
	return out
}

func (p *parser) phone(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	n, err := phone.Normalize(v)
	if err != nil {
		p.fail(name, v, err.Error(), "4915123456789")
	}
	return n
}

func (p *parser) phones(name string) []string {
	v, ok := p.get(name)
	if !ok {
		return nil
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n, err := phone.Normalize(part)
		if err != nil {
			p.fail(name, v, err.Error()+"; separate several numbers with commas", "4915123456789")
			return nil
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
