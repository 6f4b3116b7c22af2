package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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

func TestAppJSONForHerokuButton(t *testing.T) {
	raw, err := os.ReadFile("../../app.json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Stack     string
		Formation map[string]struct{ Quantity int }
		Addons    []struct{ Plan string }
		Env       map[string]struct {
			Description string
			Value       *string
			Generator   string
		}
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatalf("app.json: %v", err)
	}
	if app.Stack != "heroku-24" {
		t.Errorf("stack %q, want heroku-24", app.Stack)
	}
	if len(app.Formation) != 1 || app.Formation["web"].Quantity != 1 {
		t.Errorf("formation %+v; want exactly one web dyno (one process per WhatsApp account)", app.Formation)
	}
	if len(app.Addons) == 0 || !strings.HasPrefix(app.Addons[0].Plan, "heroku-postgresql") {
		t.Errorf("addons %+v; want heroku-postgresql", app.Addons)
	}
	// Heroku sets PORT and DATABASE_URL; the sandbox and TZ are not for deployments.
	skip := []string{"PORT", "DATABASE_URL", "WA_SANDBOX", "RECONNECT_INTERVAL", "MAX_RECONNECT_RETRIES", "NOTIFICATION_RETRY_INTERVAL"}
	for _, name := range configVars(t) {
		if slices.Contains(skip, name) {
			continue
		}
		v, ok := app.Env[name]
		if !ok {
			t.Errorf("app.json lacks %s", name)
			continue
		}
		if v.Description == "" || (v.Value == nil && v.Generator == "") {
			t.Errorf("app.json %s needs a description and a default value", name)
		}
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
