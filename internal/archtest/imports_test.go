package archtest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/blacksky-bot/blacksky/"

// allowed reads the table of docs/ARCHITECTURE.md's "Which package may
// import which": package -> the internal packages it may import.
func allowed(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\| (.*) \\|$")
	name := regexp.MustCompile("`([^`]+)`")
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Which package may import which"
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			var deps []string
			for _, d := range name.FindAllStringSubmatch(m[2], -1) {
				deps = append(deps, d[1])
			}
			out[m[1]] = deps
		}
	}
	if len(out) == 0 {
		t.Fatal(`docs/ARCHITECTURE.md has no table under "## Which package may import which"`)
	}
	return out
}

// actual lists each package of the module with the internal packages it
// imports (tests' imports left out: tests may use what they need).
func actual(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if fields[0] == strings.TrimSuffix(module, "/") {
			pkg = "." // the public package blacksky, at the module's root
		}
		if pkg == "internal/archtest" || strings.HasPrefix(pkg, "third_party") {
			continue
		}
		deps := []string{}
		for _, imp := range fields[1:] {
			if imp == strings.TrimSuffix(module, "/") {
				deps = append(deps, ".")
			} else if rel, ok := strings.CutPrefix(imp, module); ok && !strings.HasPrefix(rel, "third_party") {
				deps = append(deps, rel)
			}
		}
		pkgs[pkg] = deps
	}
	return pkgs
}

// Every package imports exactly what the map allows it.
func TestImportsFollowTheMap(t *testing.T) {
	want, got := allowed(t), actual(t)
	for pkg, deps := range got {
		may, listed := want[pkg]
		if !listed {
			t.Errorf("%s is not in docs/ARCHITECTURE.md's import map; add its row", pkg)
			continue
		}
		for _, d := range deps {
			if !slices.Contains(may, d) {
				t.Errorf("%s imports %s, which the map does not allow (change the code, or the map with the reason)", pkg, d)
			}
		}
		for _, d := range may {
			if !slices.Contains(deps, d) {
				t.Errorf("the map lets %s import %s, which it no longer does; remove it from the row", pkg, d)
			}
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			t.Errorf("the map lists %s, which does not exist", pkg)
		}
	}
}

// What only tests may use is never linked into the product.
func TestTestHelpersStayOutOfTheProduct(t *testing.T) {
	for pkg, deps := range actual(t) {
		for _, d := range deps {
			if (d == "internal/testkit" || d == "internal/testdb") && pkg != "internal/testkit" {
				t.Errorf("%s imports %s, which is for tests only", pkg, d)
			}
		}
	}
}
