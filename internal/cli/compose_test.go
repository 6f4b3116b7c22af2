package cli

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/blacksky-bot/blacksky/internal/config"
)

type composeService struct {
	Image       string
	Build       string
	Environment map[string]string
	Ports       []string
	Volumes     []string
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	Healthcheck struct{ Test []string }
}

var composeVar = regexp.MustCompile(`\$\{(\w+)(:[-?])([^}]*)\}`)

// interpolate does what compose does with ${VAR:-default} and ${VAR:?error}
// for the variables in vars.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		p := composeVar.FindStringSubmatch(m)
		if v := vars[p[1]]; v != "" {
			return v
		}
		if p[2] == ":?" {
			t.Errorf("compose refuses to start without %s: %s", p[1], p[3])
		}
		return p[3]
	})
}

// compose.yaml runs the bot on PostgreSQL: the bot's environment passes
// blacksky's own validation, its DATABASE_URL names the postgres service
// with that service's credentials and without TLS (the image has none),
// the bot waits for the database's healthcheck, the data survives in a
// volume, and API_TOKEN must come from the environment (never a default).
func TestComposeRunsTheBotWithPostgres(t *testing.T) {
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct{ Services map[string]composeService }
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	bot, db := compose.Services["bot"], compose.Services["postgres"]
	if bot.Build != "." || !strings.HasPrefix(db.Image, "postgres:") {
		t.Fatalf("want services bot (build .) and postgres (postgres image); got %+v", compose.Services)
	}
	env := map[string]string{}
	for k, v := range bot.Environment {
		env[k] = interpolate(t, v, map[string]string{"API_TOKEN": strings.Repeat("a1", 32)})
	}
	if !strings.Contains(bot.Environment["API_TOKEN"], ":?") {
		t.Errorf("API_TOKEN = %q; want it required from the environment (${API_TOKEN:?...})", bot.Environment["API_TOKEN"])
	}
	if _, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Errorf("the bot's environment is invalid: %v", err)
	}
	u, err := url.Parse(env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	dbEnv := map[string]string{}
	for k, v := range db.Environment {
		dbEnv[k] = interpolate(t, v, nil)
	}
	if u.Hostname() != "postgres" || u.User.Username() != dbEnv["POSTGRES_USER"] || pass != dbEnv["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != dbEnv["POSTGRES_DB"] {
		t.Errorf("DATABASE_URL %q does not match the postgres service %v", env["DATABASE_URL"], dbEnv)
	}
	if u.Query().Get("sslmode") != "disable" {
		t.Errorf("DATABASE_URL %q lacks sslmode=disable; blacksky would require TLS the postgres image does not serve", env["DATABASE_URL"])
	}
	if bot.DependsOn["postgres"].Condition != "service_healthy" || len(db.Healthcheck.Test) == 0 {
		t.Errorf("the bot must wait for a postgres healthcheck: depends_on %+v, healthcheck %+v", bot.DependsOn, db.Healthcheck)
	}
	if len(db.Volumes) == 0 || !strings.HasSuffix(db.Volumes[0], ":/var/lib/postgresql/data") {
		t.Errorf("postgres volumes %q; want the data directory in a volume", db.Volumes)
	}
	if len(bot.Ports) != 1 || bot.Ports[0] != "8080:8080" {
		t.Errorf("bot ports %q; want 8080:8080", bot.Ports)
	}
}
