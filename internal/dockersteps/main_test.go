package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repo makes a git repository holding files (name → content; a name ending
// in "*" is made executable without the star).
func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return dir
}

func buildIn(t *testing.T, dir string, smoke ...string) (string, error) {
	t.Helper()
	var log bytes.Buffer
	err := build(context.Background(), options{dir: dir, buildArgs: buildArgs{}, smoke: smoke}, &log)
	return log.String(), err
}

func TestParseJoinsContinuationsAndDropsComments(t *testing.T) {
	src := "# syntax note\nARG GLOBAL=1\nFROM golang:1.26 AS build\nWORKDIR /src\nRUN echo a \\\n  # a comment inside\n  && echo b\n\nFROM scratch\nCOPY --from=build /src/x /x\n"
	stages, err := parseDockerfile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].name != "build" || stages[1].image != "scratch" {
		t.Fatalf("stages = %+v", stages)
	}
	run := stages[0].steps[1]
	if run.cmd != "RUN" || run.args != "echo a && echo b" || run.line != 5 {
		t.Errorf("RUN = %+v; want the continuation joined, the comment dropped, line 5", run)
	}
	if _, err := parseDockerfile(strings.NewReader("RUN true\n")); err == nil {
		t.Error("an instruction before FROM was accepted")
	}
}

func TestContextHonoursDockerignore(t *testing.T) {
	dir := repo(t, map[string]string{
		".dockerignore":      "data\n**/*.test\n!keep.test\n.env\n",
		".gitignore":         "/local.txt\n",
		"go.mod":             "module x\n",
		"data/blacksky.db":   "db",
		"cmd/x/x.test":       "binary",
		"keep.test":          "kept by !",
		".env":               "API_TOKEN=secret",
		"local.txt":          "ignored by git: not in a fresh clone",
		"internal/data.go":   "package internal",
		"internal/a/data/ok": "data below the top level is not matched by 'data'",
	})
	files, ignored, err := contextFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	want := []string{".dockerignore", ".gitignore", "go.mod", "internal/a/data/ok", "internal/data.go", "keep.test"}
	if !slices.Equal(files, want) || ignored != 3 {
		t.Errorf("context = %q (%d ignored); want %q (3 ignored)", files, ignored, want)
	}
}

func TestBuildStopsAtTheFailingStepAndNamesItsLine(t *testing.T) {
	dir := repo(t, map[string]string{
		"Dockerfile": "FROM golang AS build\nWORKDIR /src\nCOPY a.txt ./\nRUN test -f b.txt\n",
		"a.txt":      "a",
		"b.txt":      "b, in the repository but never copied",
	})
	_, err := buildIn(t, dir)
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:4 RUN test -f b.txt") {
		t.Fatalf("err = %v; want the failing RUN line named", err)
	}
}

func TestCopyOfWhatDockerignoreExcludesFails(t *testing.T) {
	dir := repo(t, map[string]string{
		"Dockerfile":    "FROM golang\nCOPY secrets ./\n",
		".dockerignore": "secrets\n",
		"secrets/x":     "x",
	})
	if _, err := buildIn(t, dir); err == nil || !strings.Contains(err.Error(), "not in the build context") {
		t.Fatalf("err = %v; want the excluded source refused", err)
	}
}

func TestBuildCopiesBetweenStagesAndRunsTheEntrypoint(t *testing.T) {
	dir := repo(t, map[string]string{
		"Dockerfile": `FROM golang AS build
WORKDIR /src
COPY . .
ARG GREETING=hello
ENV WHO=world
RUN mkdir -p out && printf '#!/bin/sh\necho %s %s "$@"\n' "$GREETING" "$WHO" > out/hi && chmod +x out/hi
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/out/hi /usr/local/bin/hi
USER nonroot:nonroot
HEALTHCHECK --interval=30s CMD ["/usr/local/bin/hi", "health"]
ENTRYPOINT ["/usr/local/bin/hi"]
`,
	})
	log, err := buildIn(t, dir, "there")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if !strings.Contains(log, "hello world there") {
		t.Errorf("the ENTRYPOINT's output is missing from the log:\n%s", log)
	}
}

func TestRefusesWhatItCannotEmulate(t *testing.T) {
	for name, dockerfile := range map[string]string{
		"absolute path":  "FROM golang\nRUN mkdir -p /out\n",
		"run after user": "FROM golang\nUSER nobody\nRUN true\n",
		"missing binary": "FROM golang\nENTRYPOINT [\"/bin/nothing\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := repo(t, map[string]string{"Dockerfile": dockerfile})
			if _, err := buildIn(t, dir); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// The repository's own Dockerfile, checked statically (the full run is
// .ci/docker-steps): go.mod's local replace targets are in place before the
// first RUN (issue 15: `go mod download` ran before third_party/whatsmeow
// was copied, so `docker build .` failed), and history and local data stay
// out of the context.
func TestRepositoryDockerfileCopiesReplaceTargetsBeforeRunning(t *testing.T) {
	root := "../.."
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range regexp.MustCompile(`(?m)=>\s*(\./\S+)`).FindAllSubmatch(gomod, -1) {
		targets = append(targets, strings.TrimPrefix(string(m[1]), "./"))
	}
	if len(targets) == 0 {
		t.Fatal("go.mod has no local replace; this test is stale")
	}
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages, err := parseDockerfile(f)
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{}
	for _, in := range stages[0].steps {
		if in.cmd == "RUN" {
			break
		}
		if in.cmd == "COPY" {
			for _, w := range strings.Fields(in.args) {
				copied[strings.TrimSuffix(strings.TrimPrefix(w, "./"), "/")] = true
			}
		}
	}
	for _, target := range targets {
		if !copied[target] && !copied["."] && !copied[strings.SplitN(target, "/", 2)[0]] {
			t.Errorf("the build stage runs before copying %s, which go.mod's replace needs", target)
		}
	}
	pm, err := dockerignore(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git/config", "data/blacksky.db", "cmd/blacksky/blacksky.test", ".env"} {
		if ok, _ := pm.MatchesOrParentMatches(p); !ok {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}
