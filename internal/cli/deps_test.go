package cli

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The product's dependencies are the product's: what the harnesses need
// (gonum/plot and its font, PDF and LaTeX modules for the soak's charts) is
// in the tools/ module, never linked into blacksky nor required by its
// go.mod, where every user who builds it would fetch it; the simulator and
// the test helpers are never linked into it.
func TestProductDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "github.com/blacksky-bot/blacksky/cmd/blacksky").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"gonum.org/", "codeberg.org/go-", "git.sr.ht/~sbinet/", "github.com/ajstarks/", "github.com/chromedp/"}
	pkgs, err := exec.Command("go", "list", "-deps", "github.com/blacksky-bot/blacksky/cmd/blacksky").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(pkgs)) {
		// The simulator is development's, in its own program (cmd/blacksky-sandbox).
		if pkg == "github.com/blacksky-bot/blacksky/internal/sandbox" || strings.HasPrefix(pkg, "github.com/blacksky-bot/blacksky/internal/test") {
			t.Errorf("the blacksky binary links %s", pkg)
		}
	}
	for _, mod := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(mod, f) {
				t.Errorf("the blacksky binary links %s", mod)
			}
		}
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forbidden[:4] {
		if strings.Contains(string(gomod), f) {
			t.Errorf("the product's go.mod requires %s*: it belongs in tools/go.mod", f)
		}
	}
}
