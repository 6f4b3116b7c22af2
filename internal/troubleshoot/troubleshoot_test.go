package troubleshoot

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// anchor is the id GitHub gives a heading: lower case, punctuation other
// than '-' and '_' dropped, each space a '-'.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func guideAnchors(t *testing.T) map[string]int {
	t.Helper()
	doc, err := os.ReadFile("../../docs/TROUBLESHOOTING.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		out[anchor(m[1])]++
	}
	return out
}

// Every section a log line or doctor points to is a heading of the guide,
// once: a renamed heading breaks links in logs already written.
func TestEverySectionIsAHeading(t *testing.T) {
	anchors := guideAnchors(t)
	for _, s := range All() {
		switch anchors[string(s)] {
		case 0:
			t.Errorf("docs/TROUBLESHOOTING.md has no heading with anchor %q", s)
		case 1:
		default:
			t.Errorf("docs/TROUBLESHOOTING.md has %d headings with anchor %q; links would land on the first", anchors[string(s)], s)
		}
	}
	if len(anchors) == 0 {
		t.Fatal("no headings found")
	}
}

// All lists every Section constant, so the test above sees each.
func TestAllListsEverySection(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "troubleshoot.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[Section]bool{}
	for _, s := range All() {
		listed[s] = true
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		spec, ok := node.(*ast.ValueSpec)
		if !ok || spec.Type == nil || types(spec.Type) != "Section" {
			return true
		}
		for i, name := range spec.Names {
			n++
			lit := strings.Trim(spec.Values[i].(*ast.BasicLit).Value, `"`)
			if !listed[Section(lit)] {
				t.Errorf("%s is missing from All()", name.Name)
			}
		}
		return true
	})
	if n != len(All()) {
		t.Errorf("%d Section constants, All() lists %d", n, len(All()))
	}
}

func types(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func TestAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"Error 463: the reach-out lock":         "error-463-the-reach-out-lock",
		"Client outdated (405)":                 "client-outdated-405",
		"Waiting for this message, and Bad MAC": "waiting-for-this-message-and-bad-mac",
	} {
		if got := anchor(in); got != want {
			t.Errorf("anchor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURL(t *testing.T) {
	if got, want := ReachOut.URL(), Doc+"#error-463-the-reach-out-lock"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}
