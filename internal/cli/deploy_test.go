package cli

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/config"
)

// configVars lists every variable config.Load reads, from its source, so a
// new variable cannot be added without documenting it.
func configVars(t *testing.T) []string {
	src, err := os.ReadFile("../../internal/config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`p\.\w+\("([A-Z_]+)"`).FindAllSubmatch(src, -1) {
		if name := string(m[1]); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) < 15 {
		t.Fatalf("found only %d variables in config.go; the pattern is stale", len(names))
	}
	return names
}

func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range configVars(t) {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README does not document %s", name)
		}
	}
}

// buildpackVars are the variables in app.json that Heroku's Go buildpack
// reads at build time rather than blacksky at run time, with the one value
// each may have.
var buildpackVars = map[string]string{
	// -ldflags -X main.version=$SOURCE_VERSION: the deployed commit.
	"GO_LINKER_SYMBOL": "main.version",
}

// The Heroku button deploys this repository with a form that asks only what
// a user must decide (OWNER_NUMBER); secrets are generated, the few other
// values are set, everything else keeps blacksky's defaults and is left out
// (issue 15: the button had no template, app.json no repository, the form
// 38 fields).
func TestAppJSONForHerokuButton(t *testing.T) {
	raw, err := os.ReadFile("../../app.json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Name, Description, Repository, Stack string
		Formation                            map[string]struct {
			Quantity int
			Size     string
		}
		Addons []struct{ Plan string }
		Env    map[string]struct {
			Description string
			Value       *string
			Generator   string
			Required    *bool
		}
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatalf("app.json: %v", err)
	}
	if len(app.Name) > 30 || len(app.Description) > 140 {
		t.Errorf("name %d and description %d characters; Heroku allows 30 and 140", len(app.Name), len(app.Description))
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := regexp.MustCompile(`(?m)^module (\S+)`).FindSubmatch(gomod)
	if want := "https://" + string(module[1]); app.Repository != want {
		t.Errorf("repository %q, want %q (the module path)", app.Repository, want)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	button := regexp.MustCompile(`\]\((https://heroku\.com/deploy[^)\s]*)\)`).FindSubmatch(readme)
	if button == nil {
		t.Fatal("README has no Deploy to Heroku button")
	}
	u, err := url.Parse(string(button[1]))
	if err != nil || u.Query().Get("template") != app.Repository {
		t.Errorf("Deploy button %s: want ?template=%s, so Heroku finds the repository wherever the README is read", button[1], app.Repository)
	}
	if app.Stack != "heroku-24" {
		t.Errorf("stack %q, want heroku-24", app.Stack)
	}
	if len(app.Formation) != 1 || app.Formation["web"].Quantity != 1 || app.Formation["web"].Size != "basic" {
		t.Errorf("formation %+v; want exactly one basic web dyno (one process per WhatsApp account; the README prices it)", app.Formation)
	}
	if len(app.Addons) != 1 || app.Addons[0].Plan != "heroku-postgresql:essential-0" {
		t.Errorf("addons %+v; want heroku-postgresql:essential-0 (the README prices it)", app.Addons)
	}

	known := configVars(t)
	vars := map[string]string{"DATABASE_URL": "postgres://u:p@db.example.com:5432/d", "PORT": "31234"}
	var asked, set []string
	for name, v := range app.Env {
		want, build := buildpackVars[name]
		switch {
		case build:
			if v.Value == nil || *v.Value != want {
				t.Errorf("app.json %s must be %q", name, want)
			}
		case !slices.Contains(known, name):
			t.Errorf("app.json sets %s, which blacksky does not read", name)
		}
		if v.Description == "" {
			t.Errorf("app.json %s has no description", name)
		}
		required := v.Required == nil || *v.Required // Heroku's default is required
		switch {
		case v.Generator == "secret":
			vars[name] = strings.Repeat("0f", 32) // what Heroku generates: 64 hex digits
		case v.Generator != "":
			t.Errorf("app.json %s: generator %q; Heroku knows only \"secret\"", name, v.Generator)
		case v.Value == nil || *v.Value == "":
			asked = append(asked, name)
			if !required {
				t.Errorf("app.json %s is asked for but optional: give it a value or leave it out", name)
			}
			vars[name] = "4915123456789"
		default:
			set = append(set, name)
			if required {
				t.Errorf("app.json %s has a value but is required", name)
			}
			vars[name] = *v.Value
		}
	}
	if !slices.Equal(asked, []string{"OWNER_NUMBER"}) {
		t.Errorf("the form asks for %q; want only OWNER_NUMBER", asked)
	}
	if len(set) > 2 {
		t.Errorf("app.json presets %q; keep it to what Heroku needs differently from blacksky's defaults", set)
	}
	for _, secret := range []string{"API_TOKEN", "SESSION_ENCRYPTION_KEY"} {
		if app.Env[secret].Generator != "secret" {
			t.Errorf("app.json %s is not generated", secret)
		}
	}
	// What the button creates starts: every value passes blacksky's validation.
	if _, err := config.Load(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }); err != nil {
		t.Errorf("the deployed configuration is invalid: %v", err)
	}
}

func TestProcfileRunsOneWebProcess(t *testing.T) {
	raw, err := os.ReadFile("../../Procfile")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "web: bin/blacksky") {
		t.Errorf("Procfile = %q; want a single web process running bin/blacksky", raw)
	}
}
