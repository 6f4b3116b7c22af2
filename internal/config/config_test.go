package config_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/phone"
)

// env is a map-backed Getenv so tests never read or change the process's
// environment.
func env(kv ...string) config.Getenv {
	if len(kv)%2 != 0 {
		panic("env: odd number of arguments")
	}
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func mustLoad(t *testing.T, e config.Getenv) *config.Config {
	t.Helper()
	c, err := config.Load(e)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// loadErr loads e and returns the *config.Error it must fail with.
func loadErr(t *testing.T, e config.Getenv) *config.Error {
	t.Helper()
	c, err := config.Load(e)
	if err == nil {
		t.Fatalf("Load succeeded with %+v; want an error", c)
	}
	if c != nil {
		t.Errorf("Load returned a config together with error %v", err)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error %v (%T) is not a *config.Error", err, err)
	}
	return ce
}

var defaults = config.Config{
	DatabaseURL:             "",
	DataDir:                 "./data",
	Port:                    8080,
	ListenAddr:              ":8080",
	Owners:                  nil,
	BotName:                 "blacksky",
	Prefix:                  ".",
	SessionID:               "default",
	APIToken:                "",
	LogLevel:                slog.LevelInfo,
	LogFormat:               "text",
	MaxMemoryMB:             0,
	Sandbox:                 "",
	PairPhone:               "",
	ShutdownTimeout:         25 * time.Second,
	ReconnectBaseDelay:      time.Second,
	ReconnectMaxDelay:       60 * time.Second,
	ReconnectMaxRetries:     0,
	ReconnectProbe:          500 * time.Millisecond,
	ReconnectAlertAfter:     5 * time.Minute,
	KeepAliveMaxFail:        time.Minute,
	AckTimeout:              15 * time.Second,
	SilenceTimeout:          20 * time.Minute,
	ReplacedBackoff:         30 * time.Second,
	LeaseInterval:           time.Second,
	OutgoingMaxAttempts:     10,
	OutgoingTTL:             24 * time.Hour,
	OutgoingMaxPending:      10000,
	OutgoingRetryBase:       2 * time.Second,
	OutgoingRetryMax:        5 * time.Minute,
	OutgoingRetention:       7 * 24 * time.Hour,
	SendRatePerMinute:       20,
	SendChatGap:             time.Second,
	OutgoingSendTimeout:     30 * time.Second,
	OutgoingDeliveryTimeout: 10 * time.Minute,
	BackupDir:               "data/backups",
	BackupKeep:              5,
	BackupInterval:          30 * time.Minute,
	WebhookMaxAttempts:      12,
	WebhookTimeout:          10 * time.Second,
	Ignored:                 nil,
}

var allVars = []string{
	"DATABASE_URL", "DATA_DIR", "PORT", "LISTEN_ADDR", "PGSSLMODE", "OWNER_NUMBER", "BOT_NAME", "PREFIX", "SESSION_ID",
	"API_TOKEN", "LOG_LEVEL", "LOG_FORMAT", "MAX_MEMORY_MB", "WA_SANDBOX", "WA_SANDBOX_TRUST", "PAIR_PHONE", "WA_VERSION",
	"SHUTDOWN_TIMEOUT", "RECONNECT_BASE_DELAY", "RECONNECT_MAX_DELAY", "RECONNECT_MAX_RETRIES",
	"RECONNECT_INTERVAL", "MAX_RECONNECT_RETRIES", "RECONNECT_PROBE_INTERVAL",
	"RECONNECT_ALERT_AFTER", "KEEPALIVE_MAX_FAIL", "ACK_TIMEOUT", "SILENCE_TIMEOUT", "REPLACED_BACKOFF", "LEASE_INTERVAL",
	"OUTGOING_MAX_ATTEMPTS", "OUTGOING_TTL", "OUTGOING_MAX_PENDING", "OUTGOING_RETRY_BASE_DELAY", "OUTGOING_RETRY_MAX_DELAY",
	"OUTGOING_RETENTION", "SEND_RATE_PER_MINUTE", "SEND_CHAT_GAP", "NOTIFICATION_RETRY_INTERVAL", "OUTGOING_SEND_TIMEOUT",
	"OUTGOING_DELIVERY_TIMEOUT",
	"NOTIFY_MAX_ATTEMPTS", "NOTIFY_TTL", "NOTIFY_MAX_PENDING", "NOTIFY_RETRY_BASE_DELAY", "NOTIFY_RETRY_MAX_DELAY", "NOTIFY_RETENTION", "NOTIFY_SEND_TIMEOUT",
	"NOTIFY_DELIVERY_TIMEOUT",
	"SESSION_ENCRYPTION_KEY", "BACKUP_DIR", "BACKUP_KEEP", "BACKUP_INTERVAL", "ENABLE_SESSION_BACKUP",
	"WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_TIMEOUT",
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, env())
	if !reflect.DeepEqual(*c, defaults) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *c, defaults)
	}
	if c.UsesPostgres() {
		t.Error("UsesPostgres() with no DATABASE_URL")
	}
	if got, want := c.SQLitePath(), filepath.Join("data", "blacksky.db"); got != want {
		t.Errorf("SQLitePath() = %q, want %q", got, want)
	}
}

// Backups exist only with the key; the schedule also needs an interval
// (ENABLE_SESSION_BACKUP=false turns only the schedule off).
func TestBackupsEnabled(t *testing.T) {
	for _, tc := range []struct {
		kv                 []string
		enabled, scheduled bool
	}{
		{nil, false, false},
		{[]string{"SESSION_ENCRYPTION_KEY", "0123456789abcdef0123"}, true, true},
		{[]string{"SESSION_ENCRYPTION_KEY", "0123456789abcdef0123", "ENABLE_SESSION_BACKUP", "false"}, true, false},
		{[]string{"ENABLE_SESSION_BACKUP", "true"}, false, false},
	} {
		c := mustLoad(t, env(tc.kv...))
		if c.BackupsEnabled() != tc.enabled || c.ScheduledBackups() != tc.scheduled {
			t.Errorf("%v: BackupsEnabled %v, ScheduledBackups %v; want %v, %v", tc.kv, c.BackupsEnabled(), c.ScheduledBackups(), tc.enabled, tc.scheduled)
		}
	}
}

// An empty variable (VAR= in a compose or .env file) means the default.
func TestEmptyMeansDefault(t *testing.T) {
	var kv []string
	for _, name := range allVars {
		kv = append(kv, name, "")
	}
	c := mustLoad(t, env(kv...))
	if !reflect.DeepEqual(*c, defaults) {
		t.Errorf("all variables empty:\n got %+v\nwant %+v", *c, defaults)
	}
}

func TestValidValues(t *testing.T) {
	tests := []struct {
		name  string
		kv    []string
		check func(*config.Config) bool
	}{
		{"postgres URL", []string{"DATABASE_URL", "postgres://bot:pw@db:5432/blacksky?sslmode=disable"},
			func(c *config.Config) bool {
				return c.DatabaseURL == "postgres://bot:pw@db:5432/blacksky?sslmode=disable" && c.UsesPostgres()
			}},
		{"postgresql scheme", []string{"DATABASE_URL", "postgresql://db/blacksky"},
			func(c *config.Config) bool { return c.DatabaseURL == "postgresql://db/blacksky" }},
		{"scheme in capitals", []string{"DATABASE_URL", "PostgreS://db/blacksky"}, // found by FuzzLoad
			func(c *config.Config) bool { return c.DatabaseURL == "postgres://db/blacksky" && c.UsesPostgres() }},
		{"data dir", []string{"DATA_DIR", "/var/lib/blacksky"},
			func(c *config.Config) bool { return c.SQLitePath() == "/var/lib/blacksky/blacksky.db" }},
		{"port trimmed", []string{"PORT", " 9090\n"}, func(c *config.Config) bool { return c.Port == 9090 }},
		{"lowest port", []string{"PORT", "1"}, func(c *config.Config) bool { return c.Port == 1 }},
		{"highest port", []string{"PORT", "65535"}, func(c *config.Config) bool { return c.Port == 65535 }},
		{"bot name", []string{"BOT_NAME", "Knight Bot"}, func(c *config.Config) bool { return c.BotName == "Knight Bot" }},
		{"prefix", []string{"PREFIX", "!"}, func(c *config.Config) bool { return c.Prefix == "!" }},
		{"five-rune prefix", []string{"PREFIX", "ßßßßß"}, func(c *config.Config) bool { return c.Prefix == "ßßßßß" }},
		{"session id", []string{"SESSION_ID", "shop-2.main_1"}, func(c *config.Config) bool { return c.SessionID == "shop-2.main_1" }},
		{"api token", []string{"API_TOKEN", "0123456789abcdef"}, func(c *config.Config) bool { return c.APIToken == "0123456789abcdef" }},
		{"log level debug", []string{"LOG_LEVEL", "debug"}, func(c *config.Config) bool { return c.LogLevel == slog.LevelDebug }},
		{"log level upper case", []string{"LOG_LEVEL", "ERROR"}, func(c *config.Config) bool { return c.LogLevel == slog.LevelError }},
		{"log level warning", []string{"LOG_LEVEL", "warning"}, func(c *config.Config) bool { return c.LogLevel == slog.LevelWarn }},
		{"log level WARNING", []string{"LOG_LEVEL", "WARNING"}, func(c *config.Config) bool { return c.LogLevel == slog.LevelWarn }},
		{"log format json", []string{"LOG_FORMAT", "JSON"}, func(c *config.Config) bool { return c.LogFormat == "json" }},
		{"max memory", []string{"MAX_MEMORY_MB", "512"}, func(c *config.Config) bool { return c.MaxMemoryMB == 512 }},
		{"sandbox trailing slash", []string{"WA_SANDBOX", "http://127.0.0.1:7878/", "WA_SANDBOX_TRUST", "/tmp/t.json"},
			func(c *config.Config) bool {
				return c.Sandbox == "http://127.0.0.1:7878" && c.SandboxTrust == "/tmp/t.json"
			}},
		{"pair phone normalized", []string{"PAIR_PHONE", "+49 151 2345 6789"},
			func(c *config.Config) bool { return c.PairPhone == "4915123456789" }},
		{"shutdown timeout", []string{"SHUTDOWN_TIMEOUT", "1m"}, func(c *config.Config) bool { return c.ShutdownTimeout == time.Minute }},
		{"reconnect delays", []string{"RECONNECT_BASE_DELAY", "500ms", "RECONNECT_MAX_DELAY", "5m"},
			func(c *config.Config) bool {
				return c.ReconnectBaseDelay == 500*time.Millisecond && c.ReconnectMaxDelay == 5*time.Minute
			}},
		{"equal reconnect delays", []string{"RECONNECT_BASE_DELAY", "2s", "RECONNECT_MAX_DELAY", "2s"},
			func(c *config.Config) bool {
				return c.ReconnectBaseDelay == 2*time.Second && c.ReconnectMaxDelay == 2*time.Second
			}},
		{"reconnect retries", []string{"RECONNECT_MAX_RETRIES", "7"}, func(c *config.Config) bool { return c.ReconnectMaxRetries == 7 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, env(tt.kv...))
			if !tt.check(c) {
				t.Errorf("%q gave %+v", tt.kv, *c)
			}
		})
	}
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		name, value string
	}{
		{"DATABASE_URL", "mysql://bot@db/blacksky"},
		{"DATABASE_URL", "postgres:///blacksky"},
		{"DATABASE_URL", "db:5432"},
		{"PORT", "0"},
		{"PORT", "65536"},
		{"PORT", "-1"},
		{"PORT", "80a"},
		{"PORT", "8080.0"},
		{"OWNER_NUMBER", "015123456789"},
		{"OWNER_NUMBER", "4915123456789,abc"},
		{"PREFIX", "a b"},
		{"PREFIX", "!!!!!!"},
		{"PREFIX", "\t"},
		{"PREFIX", "\xf3"},
		{"PREFIX", "!\u2003"},
		{"SESSION_ID", "my session"},
		{"SESSION_ID", strings.Repeat("a", 65)},
		{"SESSION_ID", "bot/../../etc"},
		{"API_TOKEN", "short"},
		{"API_TOKEN", "                    "}, // would be no token at all, without a word
		{"LOG_LEVEL", "verbose"},
		{"LOG_FORMAT", "yaml"},
		{"MAX_MEMORY_MB", "-1"},
		{"MAX_MEMORY_MB", "1GB"},
		{"MAX_MEMORY_MB", "1048577"},
		{"WA_SANDBOX", "127.0.0.1:7878"},
		{"WA_SANDBOX", "ftp://sandbox"},
		{"WA_SANDBOX", "http://"},
		{"PAIR_PHONE", "0049151234567"},
		{"PAIR_PHONE", "12345"},
		{"SHUTDOWN_TIMEOUT", "25"},
		{"SHUTDOWN_TIMEOUT", "500ms"},
		{"SHUTDOWN_TIMEOUT", "11m"},
		{"RECONNECT_BASE_DELAY", "1"},
		{"RECONNECT_BASE_DELAY", "1ms"},
		{"RECONNECT_BASE_DELAY", "2h"},
		{"RECONNECT_MAX_DELAY", "soon"},
		{"RECONNECT_MAX_DELAY", "25h"},
		{"RECONNECT_MAX_RETRIES", "-1"},
		{"RECONNECT_MAX_RETRIES", "forever"},
		{"REPLACED_BACKOFF", "5s"}, // shorter invites a replace ping-pong
		{"SESSION_ENCRYPTION_KEY", "short"},
		{"SESSION_ENCRYPTION_KEY", strings.Repeat("é", 8)}, // 16 bytes, 8 characters: backups count characters
		{"WEBHOOK_URL", "ftp://example.org/x"},
		{"WEBHOOK_SECRET", "tiny"},
		{"BACKUP_KEEP", "0"},
		{"BACKUP_INTERVAL", "10s"},
		{"ENABLE_SESSION_BACKUP", "sometimes"},
		{"KEEPALIVE_MAX_FAIL", "1s"},
		{"ACK_TIMEOUT", "500ms"},
		{"ACK_TIMEOUT", "30s"}, // not shorter than OUTGOING_SEND_TIMEOUT: the attempt would end first
		{"SILENCE_TIMEOUT", "30s"},
		{"SILENCE_TIMEOUT", "-1m"},
		{"RECONNECT_PROBE_INTERVAL", "fast"},
		{"RECONNECT_ALERT_AFTER", "-1m"},
		{"RECONNECT_INTERVAL", "0"},
		{"RECONNECT_INTERVAL", "-5000"},
		{"RECONNECT_INTERVAL", "5 seconds"},
		{"RECONNECT_INTERVAL", "1"},                    // 1 ms: below RECONNECT_BASE_DELAY's minimum of 10ms
		{"RECONNECT_INTERVAL", "3h"},                   // above its maximum of 1h
		{"RECONNECT_INTERVAL", "9223372036854775807"},  // would overflow to a negative delay
		{"RECONNECT_INTERVAL", "-9223372036854775"},    // would overflow into range
		{"RECONNECT_INTERVAL", "18446744073709551616"}, // not even an int
		{"MAX_RECONNECT_RETRIES", "-3"},
		{"MAX_RECONNECT_RETRIES", "lots"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			ce := loadErr(t, env(tt.name, tt.value))
			checkError(t, ce, tt.name)
		})
	}
}

// A sandbox is reached only with its trust file: WA_SANDBOX alone is refused,
// naming the variable to add, rather than trusting whatever answers there.
func TestSandboxNeedsItsTrustFile(t *testing.T) {
	for _, kv := range [][]string{{"WA_SANDBOX", "http://127.0.0.1:7878"}, {"WA_SANDBOX_TRUST", "/tmp/t.json"}} {
		ce := loadErr(t, env(kv...))
		if msg := ce.Error(); ce.Var != "WA_SANDBOX_TRUST" || !strings.Contains(msg, "WA_SANDBOX") || strings.Contains(msg, "\n") {
			t.Errorf("%v: %s; want one line about WA_SANDBOX_TRUST", kv, msg)
		}
	}
	mustLoad(t, env("WA_SANDBOX", "http://127.0.0.1:7878", "WA_SANDBOX_TRUST", "/tmp/t.json"))
}

// checkError asserts what every configuration error must look like: it names
// the variable, fits on one line and shows a working example.
func checkError(t *testing.T, ce *config.Error, name string) {
	t.Helper()
	msg := ce.Error()
	if ce.Var != name {
		t.Errorf("error names %s, want %s: %s", ce.Var, name, msg)
	}
	if !strings.HasPrefix(msg, name+"=") {
		t.Errorf("message does not start with %s=: %s", name, msg)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	if ce.Problem == "" || ce.Example == "" {
		t.Errorf("error lacks a problem or an example: %+v", ce)
	}
	if !strings.Contains(msg, "(example: "+name+"="+ce.Example+")") {
		t.Errorf("message does not show the example: %s", msg)
	}
	// The example must itself be accepted (secrets' examples describe a
	// secret rather than being one; a webhook needs its secret beside it,
	// a sandbox its trust file).
	secrets := []string{"API_TOKEN", "SESSION_ENCRYPTION_KEY", "WEBHOOK_SECRET"}
	if !slices.Contains(secrets, name) {
		kv := []string{name, ce.Example, "WEBHOOK_SECRET", strings.Repeat("s", 32)}
		if name == "WA_SANDBOX" {
			kv = append(kv, "WA_SANDBOX_TRUST", "/tmp/t.json")
		}
		if _, err := config.Load(env(kv...)); err != nil {
			t.Errorf("the example %s=%s is rejected: %v", name, ce.Example, err)
		}
	}
}

// ACK_TIMEOUT follows a shorter OUTGOING_SEND_TIMEOUT when unset, so setting
// only the latter never fails on a variable the user did not touch.
func TestAckTimeoutFollowsSendTimeout(t *testing.T) {
	c := mustLoad(t, env("OUTGOING_SEND_TIMEOUT", "10s"))
	if c.AckTimeout != 5*time.Second {
		t.Errorf("AckTimeout = %v with OUTGOING_SEND_TIMEOUT=10s, want 5s", c.AckTimeout)
	}
	if c := mustLoad(t, env("SILENCE_TIMEOUT", "0")); c.SilenceTimeout != 0 {
		t.Errorf("SILENCE_TIMEOUT=0 gave %v, want 0 (off)", c.SilenceTimeout)
	}
}

func TestReconnectMaxShorterThanBase(t *testing.T) {
	ce := loadErr(t, env("RECONNECT_BASE_DELAY", "2m", "RECONNECT_MAX_DELAY", "1m"))
	checkError(t, ce, "RECONNECT_MAX_DELAY")
	if !strings.Contains(ce.Problem, "RECONNECT_BASE_DELAY") {
		t.Errorf("problem does not mention RECONNECT_BASE_DELAY: %s", ce)
	}
}

// Every invalid variable is reported, in the order they are read, not
// only the first (issue 15: doctor showed one bad variable per run); a
// check across variables is not made against one that is invalid itself.
func TestEveryInvalidVariableIsReported(t *testing.T) {
	_, err := config.Load(env("PORT", "x", "LOG_FORMAT", "yaml", "RECONNECT_BASE_DELAY", "soon", "RECONNECT_MAX_DELAY", "20ms",
		"WEBHOOK_URL", "ftp://hook", "SILENCE_TIMEOUT", "5s"))
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load error %v (%T) is not config.Errors", err, err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Var)
	}
	// RECONNECT_MAX_DELAY=20ms is valid on its own, and is not compared with
	// the invalid RECONNECT_BASE_DELAY; WEBHOOK_SECRET is not asked for an
	// invalid WEBHOOK_URL.
	want := []string{"PORT", "LOG_FORMAT", "RECONNECT_BASE_DELAY", "WEBHOOK_URL", "SILENCE_TIMEOUT"}
	if !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
	var first *config.Error
	if !errors.As(err, &first) || first.Var != "PORT" {
		t.Errorf("errors.As finds %v, want the first problem, PORT", first)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("Errors.Error() is not one line: %q", err)
	}
}

// LISTEN_ADDR chooses the address (issue 15: always all interfaces); PORT
// the port unless LISTEN_ADDR names one, which must then agree with a PORT
// that is set.
func TestListenAddr(t *testing.T) {
	valid := []struct {
		kv   []string
		addr string
		port int
	}{
		{nil, ":8080", 8080},
		{[]string{"PORT", "5000"}, ":5000", 5000},
		{[]string{"LISTEN_ADDR", "127.0.0.1"}, "127.0.0.1:8080", 8080},
		{[]string{"LISTEN_ADDR", "127.0.0.1", "PORT", "5000"}, "127.0.0.1:5000", 5000},
		{[]string{"LISTEN_ADDR", "0.0.0.0"}, "0.0.0.0:8080", 8080},
		{[]string{"LISTEN_ADDR", "::1"}, "[::1]:8080", 8080},
		{[]string{"LISTEN_ADDR", "[::1]"}, "[::1]:8080", 8080},
		{[]string{"LISTEN_ADDR", "::"}, "[::]:8080", 8080},
		{[]string{"LISTEN_ADDR", "127.0.0.1:9000"}, "127.0.0.1:9000", 9000},
		{[]string{"LISTEN_ADDR", "[::1]:9000"}, "[::1]:9000", 9000},
		{[]string{"LISTEN_ADDR", ":9000"}, ":9000", 9000},
		{[]string{"LISTEN_ADDR", "127.0.0.1:9000", "PORT", "9000"}, "127.0.0.1:9000", 9000},
		{[]string{"LISTEN_ADDR", " 10.1.2.3 "}, "10.1.2.3:8080", 8080},
	}
	for _, tt := range valid {
		c := mustLoad(t, env(tt.kv...))
		if c.ListenAddr != tt.addr || c.Port != tt.port {
			t.Errorf("%q: ListenAddr %q, Port %d; want %q, %d", tt.kv, c.ListenAddr, c.Port, tt.addr, tt.port)
		}
	}
	invalid := []struct {
		kv   []string
		want string
	}{
		{[]string{"LISTEN_ADDR", "localhost"}, "host name"},
		{[]string{"LISTEN_ADDR", "bot.example.org:8080"}, "host name"},
		{[]string{"LISTEN_ADDR", "127.0.0.1:http"}, "port"},
		{[]string{"LISTEN_ADDR", "127.0.0.1:0"}, "port"},
		{[]string{"LISTEN_ADDR", "127.0.0.1:"}, "port"},
		{[]string{"LISTEN_ADDR", "[::1"}, "IP address"},
		{[]string{"LISTEN_ADDR", "300.1.1.1"}, "IP address"},
		{[]string{"LISTEN_ADDR", "127.0.0.1:9000", "PORT", "8080"}, "PORT is 8080"},
	}
	for _, tt := range invalid {
		ce := loadErr(t, env(tt.kv...))
		checkError(t, ce, "LISTEN_ADDR")
		if !strings.Contains(ce.Problem, tt.want) {
			t.Errorf("%q: problem %q does not say %q", tt.kv, ce.Problem, tt.want)
		}
	}
	// A bad PORT is reported once, not again as a disagreement.
	_, err := config.Load(env("PORT", "x", "LISTEN_ADDR", "127.0.0.1:9000"))
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Var != "PORT" {
		t.Errorf("a bad PORT with LISTEN_ADDR's port: %v; want only the PORT error", err)
	}
}

// An sslmode the driver does not know is a configuration error (exit 2),
// not a failure to connect (issue 15: exit 1), and so is a bad PGSSLMODE.
func TestDatabaseURLIsCheckedAsTheDriverReadsIt(t *testing.T) {
	tests := []struct {
		kv        []string
		name      string
		want      string
		forbidden string
	}{
		{[]string{"DATABASE_URL", "postgres://u:hunter2@db/x?sslmode=bogus"}, "DATABASE_URL", `sslmode="bogus"`, "hunter2"},
		{[]string{"DATABASE_URL", "postgres://u:hunter2@db/x?connect_timeout=soon"}, "DATABASE_URL", "driver", "hunter2"},
		{[]string{"DATABASE_URL", "postgres://u:hunter2@db/x", "PGSSLMODE", "strict"}, "PGSSLMODE", "verify-full", "hunter2"},
	}
	for _, tt := range tests {
		ce := loadErr(t, env(tt.kv...))
		checkError(t, ce, tt.name)
		if msg := ce.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, tt.forbidden) {
			t.Errorf("%q: %s; want it to say %q and not show %q", tt.kv, msg, tt.want, tt.forbidden)
		}
	}
	for _, mode := range []string{"disable", "prefer", "require", "verify-full"} {
		mustLoad(t, env("DATABASE_URL", "postgres://u:p@db/x?sslmode="+mode))
		mustLoad(t, env("DATABASE_URL", "postgres://u:p@db/x", "PGSSLMODE", mode))
	}
	// PGSSLMODE concerns PostgreSQL only.
	mustLoad(t, env("PGSSLMODE", "strict"))
}

func TestDatabaseURLErrorHidesPassword(t *testing.T) {
	const pw = "S3cr3tPw"
	for _, v := range []string{
		"mysql://bot:" + pw + "@db:3306/blacksky",
		"postgres://bot:" + pw + "@/blacksky",                     // no host
		"postgres:/bot:" + pw + "@db/blacksky",                    // one slash
		"postgres:bot:" + pw + "@db/blacksky",                     // no slashes
		"postgres//bot:" + pw + "@db/blacksky",                    // no colon
		"bot:" + pw + "@db:5432/blacksky",                         // no scheme
		"host=db user=bot password=" + pw + " dbname=blacksky",    // libpq keyword form
		"mysql://db/blacksky?user=bot&password=" + pw,             // password in the query
		"mysql://bot:123456#" + pw + "@db/blacksky",               // unescaped '#'
		"mysql://bot:1/" + pw + "@db/blacksky",                    // unescaped '/'
		"postgres://bot:" + pw + " x@db/blacksky",                 // unparsable userinfo
		"http://bot:" + pw + "@db/blacksky",                       // wrong scheme
		"postgres://bot:" + pw + "@db:port/blacksky",              // bad port
		"postgres://bot:" + pw + "@db/blacksky\npostgres://other", // pasted twice
		"  mysql://bot:" + pw + "@db/blacksky  ",                  // surrounding space
	} {
		ce := loadErr(t, env("DATABASE_URL", v))
		checkError(t, ce, "DATABASE_URL")
		if strings.Contains(ce.Error(), pw) || strings.Contains(ce.Value, pw) {
			t.Errorf("DATABASE_URL=%q: error shows the password: %s", v, ce)
		}
	}
}

func TestAPITokenErrorHidesToken(t *testing.T) {
	const tok = "hunter2hunter"
	ce := loadErr(t, env("API_TOKEN", tok))
	checkError(t, ce, "API_TOKEN")
	if strings.Contains(ce.Error(), tok) {
		t.Errorf("error shows the token: %s", ce)
	}
}

func TestSessionStringIsNotEchoed(t *testing.T) {
	for _, v := range []string{
		// A Baileys creds blob, as bots like the original take it.
		"KnightBot!H4sIAAAAAAAAA" + strings.Repeat("q1w2e3r4t5y6u7i8o9p0", 40),
		"eyJub2lzZUtleSI6eyJwcml2YXRlIjp7InR5cGUiOiJCdWZmZXIiLCJkYXRhIjoiS0" + strings.Repeat("xYz", 30),
		// A short "Name~fileid#key" link to a stored creds file.
		"PRINCE~k4lkI6DQ#F9YtPq2mZx8vK1sHcW3nR7bJ0uLdEaGf",
		"SUBZERO-MD;;;Ab12Cd34Ef56",
	} {
		ce := loadErr(t, env("SESSION_ID", v))
		checkError(t, ce, "SESSION_ID")
		msg := ce.Error()
		if len(msg) > 400 {
			t.Errorf("message is %d bytes long", len(msg))
		}
		if !strings.Contains(ce.Problem, "session string") {
			t.Errorf("problem does not explain that this looks like a session string: %s", msg)
		}
		// No piece of the secret part after the first few characters shows.
		for i := 8; i+8 <= len(v); i += 4 {
			if strings.Contains(msg, v[i:i+8]) {
				t.Fatalf("SESSION_ID error echoes %q of the session string: %s", v[i:i+8], msg)
			}
		}
	}
}

func TestOwnerNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"4915123456789", []string{"4915123456789"}},
		{"+49 151 2345 6789", []string{"4915123456789"}},
		{"4915123456789,15550100199", []string{"4915123456789", "15550100199"}},
		{" +49 (151) 2345-6789 , 1 555 010 0199 ", []string{"4915123456789", "15550100199"}},
		{"923001234567,923001234567", []string{"923001234567"}}, // duplicates would double every alert
		{"4915123456789,,15550100199,", []string{"4915123456789", "15550100199"}},
	}
	for _, tt := range tests {
		c := mustLoad(t, env("OWNER_NUMBER", tt.in))
		if !reflect.DeepEqual(c.Owners, tt.want) {
			t.Errorf("OWNER_NUMBER=%q: Owners = %q, want %q", tt.in, c.Owners, tt.want)
		}
	}
	ce := loadErr(t, env("OWNER_NUMBER", "4915123456789;15550100199"))
	if !strings.Contains(ce.Problem, "comma") {
		t.Errorf("a list with the wrong separator should be told to use commas: %s", ce)
	}
}

func TestOriginalBotNames(t *testing.T) {
	tests := []struct {
		name      string
		kv        []string
		wantDelay time.Duration
		wantRetry int
	}{
		{"interval in milliseconds", []string{"RECONNECT_INTERVAL", "5000"}, 5 * time.Second, 0},
		{"interval as duration", []string{"RECONNECT_INTERVAL", "30s"}, 30 * time.Second, 0},
		{"interval at minimum", []string{"RECONNECT_INTERVAL", "10"}, 10 * time.Millisecond, 0},
		{"interval trimmed", []string{"RECONNECT_INTERVAL", " 3000 "}, 3 * time.Second, 0},
		{"new delay name wins", []string{"RECONNECT_INTERVAL", "5000", "RECONNECT_BASE_DELAY", "2s"}, 2 * time.Second, 0},
		{"max retries", []string{"MAX_RECONNECT_RETRIES", "10"}, time.Second, 10},
		{"new retries name wins", []string{"MAX_RECONNECT_RETRIES", "10", "RECONNECT_MAX_RETRIES", "3"}, time.Second, 3},
		{"new retries name wins with 0", []string{"MAX_RECONNECT_RETRIES", "10", "RECONNECT_MAX_RETRIES", "0"}, time.Second, 0},
		{"empty new name does not hide the old", []string{"MAX_RECONNECT_RETRIES", "10", "RECONNECT_MAX_RETRIES", ""}, time.Second, 10},
		{"invalid leftover old delay is not read", []string{"RECONNECT_INTERVAL", "soon", "RECONNECT_BASE_DELAY", "2s"}, 2 * time.Second, 0},
		{"invalid leftover old retries is not read", []string{"MAX_RECONNECT_RETRIES", "many", "RECONNECT_MAX_RETRIES", "4"}, time.Second, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, env(tt.kv...))
			if c.ReconnectBaseDelay != tt.wantDelay || c.ReconnectMaxRetries != tt.wantRetry {
				t.Errorf("%q: base delay %v, retries %d; want %v, %d",
					tt.kv, c.ReconnectBaseDelay, c.ReconnectMaxRetries, tt.wantDelay, tt.wantRetry)
			}
		})
	}
}

func TestIgnoredOriginalVariables(t *testing.T) {
	tests := []struct {
		kv   []string
		want []string
	}{
		{nil, nil},
		{[]string{"LANGUAGE", "en"}, []string{"LANGUAGE"}},
		{[]string{"LANGUAGE", "en", "KEEP_ALIVE_URL", "https://example.org", "ENABLE_HEALTH_CHECK", "true"},
			[]string{"KEEP_ALIVE_URL", "ENABLE_HEALTH_CHECK", "LANGUAGE"}},
		{[]string{"ENABLE_HEALTH_CHECK", ""}, []string{"ENABLE_HEALTH_CHECK"}},
		{[]string{"PORT", "8080", "PREFIX", "!"}, nil},
	}
	for _, tt := range tests {
		c := mustLoad(t, env(tt.kv...))
		if !reflect.DeepEqual(c.Ignored, tt.want) {
			t.Errorf("%q: Ignored = %q, want %q", tt.kv, c.Ignored, tt.want)
		}
	}
}

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func FuzzLoad(f *testing.F) {
	f.Add("postgres://u:p@db/x", "8080", "4915123456789", "default", "5000", "", "", "3")
	f.Add("mysql://u:p@db/x", "0", "+49 151,1 555", "KnightBot!abc", "1", "1ms", "1h", "-1")
	f.Add("", "65536", ",", strings.Repeat("x", 100), "9223372036854775807", "2h", "30s", "x")
	f.Add("host=db password=p", " 80 ", "015", "a~b#c", "-9223372036854775", "", "", "")
	f.Fuzz(func(t *testing.T, dbURL, port, owners, session, interval, base, maxDelay, retries string) {
		c, err := config.Load(env(
			"DATABASE_URL", dbURL,
			"PORT", port,
			"OWNER_NUMBER", owners,
			"SESSION_ID", session,
			"RECONNECT_INTERVAL", interval,
			"RECONNECT_BASE_DELAY", base,
			"RECONNECT_MAX_DELAY", maxDelay,
			"MAX_RECONNECT_RETRIES", retries,
		))
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, not *config.Error", err, err)
			}
			if c != nil {
				t.Fatalf("config %+v returned with error %v", c, err)
			}
			msg := ce.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if ce.Var == "SESSION_ID" && len(session) > 64 && strings.Contains(msg, strings.TrimSpace(session)) {
				t.Fatalf("error echoes a long SESSION_ID: %s", msg)
			}
			if ce.Var == "DATABASE_URL" && strings.Contains(ce.Value, "@") {
				t.Fatalf("DATABASE_URL error shows user info: %s", msg)
			}
			return
		}
		if c == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
		if c.Port < 1 || c.Port > 65535 {
			t.Fatalf("PORT=%q accepted as %d", port, c.Port)
		}
		for _, o := range c.Owners {
			if n, err := phone.Normalize(o); err != nil || n != o {
				t.Fatalf("OWNER_NUMBER=%q gave owner %q that is not a normalized number", owners, o)
			}
		}
		if !sessionIDPattern.MatchString(c.SessionID) {
			t.Fatalf("SESSION_ID=%q accepted as %q", session, c.SessionID)
		}
		if c.ReconnectBaseDelay < 10*time.Millisecond || c.ReconnectBaseDelay > time.Hour {
			t.Fatalf("RECONNECT_INTERVAL=%q RECONNECT_BASE_DELAY=%q gave base delay %v", interval, base, c.ReconnectBaseDelay)
		}
		if c.ReconnectMaxDelay < c.ReconnectBaseDelay {
			t.Fatalf("max delay %v below base delay %v", c.ReconnectMaxDelay, c.ReconnectBaseDelay)
		}
		if c.ReconnectMaxRetries < 0 {
			t.Fatalf("MAX_RECONNECT_RETRIES=%q gave %d", retries, c.ReconnectMaxRetries)
		}
		if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres") {
			t.Fatalf("DATABASE_URL=%q accepted", dbURL)
		}
	})
}

func TestBackupSettings(t *testing.T) {
	tests := []struct {
		kv   []string
		want time.Duration
	}{
		{[]string{"BACKUP_INTERVAL", "45"}, 45 * time.Minute}, // the original bot's minutes
		{[]string{"BACKUP_INTERVAL", "2h"}, 2 * time.Hour},
		{[]string{"ENABLE_SESSION_BACKUP", "false", "BACKUP_INTERVAL", "10"}, 0},
		{[]string{"ENABLE_SESSION_BACKUP", "TRUE"}, 30 * time.Minute},
	}
	for _, tt := range tests {
		if c := mustLoad(t, env(tt.kv...)); c.BackupInterval != tt.want {
			t.Errorf("%q: BackupInterval = %v, want %v", tt.kv, c.BackupInterval, tt.want)
		}
	}
	_, err := config.Load(env("SESSION_ENCRYPTION_KEY", "hunter2-hunter2"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a short key: %v; want an error that does not echo it", err)
	}
	if c := mustLoad(t, env("DATA_DIR", "/srv/bot")); c.BackupDir != "/srv/bot/backups" {
		t.Errorf("BackupDir = %q", c.BackupDir)
	}
}

func TestWebhookNeedsASecret(t *testing.T) {
	ce := loadErr(t, env("WEBHOOK_URL", "https://example.org/hook"))
	if ce.Var != "WEBHOOK_SECRET" {
		t.Errorf("error names %s, want WEBHOOK_SECRET", ce.Var)
	}
	c := mustLoad(t, env("WEBHOOK_URL", "https://example.org/hook", "WEBHOOK_SECRET", strings.Repeat("k", 20)))
	if c.WebhookURL != "https://example.org/hook" || c.WebhookMaxAttempts != 12 {
		t.Errorf("webhook config = %q, %d", c.WebhookURL, c.WebhookMaxAttempts)
	}
}

// The outgoing queue's settings were NOTIFY_*; the old names keep working
// when the new ones are unset, are reported so start-up can name the new
// one, and a bad value's error names the variable that was set.
func TestOldNotifyNamesStillWork(t *testing.T) {
	c := mustLoad(t, env("NOTIFY_TTL", "2h", "NOTIFY_MAX_ATTEMPTS", "3", "OUTGOING_MAX_PENDING", "50", "NOTIFY_MAX_PENDING", "999"))
	if c.OutgoingTTL != 2*time.Hour || c.OutgoingMaxAttempts != 3 {
		t.Errorf("NOTIFY_TTL=2h NOTIFY_MAX_ATTEMPTS=3 gave TTL %v, attempts %d", c.OutgoingTTL, c.OutgoingMaxAttempts)
	}
	if c.OutgoingMaxPending != 50 {
		t.Errorf("OUTGOING_MAX_PENDING=50 beside NOTIFY_MAX_PENDING=999 gave %d; the new name wins", c.OutgoingMaxPending)
	}
	want := map[string]string{"NOTIFY_TTL": "OUTGOING_TTL", "NOTIFY_MAX_ATTEMPTS": "OUTGOING_MAX_ATTEMPTS"}
	if !reflect.DeepEqual(c.Renamed, want) {
		t.Errorf("Renamed = %v, want %v", c.Renamed, want)
	}
	if e := loadErr(t, env("NOTIFY_SEND_TIMEOUT", "forever")); e.Var != "NOTIFY_SEND_TIMEOUT" {
		t.Errorf("a bad NOTIFY_SEND_TIMEOUT is reported as %s", e.Var)
	}
	if e := loadErr(t, env("NOTIFY_SEND_TIMEOUT", "5s", "ACK_TIMEOUT", "10s")); !strings.Contains(e.Problem, "NOTIFY_SEND_TIMEOUT") {
		t.Errorf("ACK_TIMEOUT's problem %q does not name the variable that was set", e.Problem)
	}
	if c := mustLoad(t, env("NOTIFY_RETRY_BASE_DELAY", "5s", "NOTIFICATION_RETRY_INTERVAL", "100")); c.OutgoingRetryBase != 5*time.Second {
		t.Errorf("NOTIFY_RETRY_BASE_DELAY=5s beside the original's interval gave %v", c.OutgoingRetryBase)
	}
}
