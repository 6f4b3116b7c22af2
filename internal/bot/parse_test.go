package bot

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		prefix, text string
		ok           bool
		name         string
		args         []string
		raw          string
	}{
		{".", ".ping", true, "ping", nil, ""},
		{".", ".PING", true, "ping", nil, ""},
		{".", "  .Ping  ", true, "ping", nil, ""},
		{".", ".echo hello   world ", true, "echo", []string{"hello", "world"}, "hello   world"},
		{".", ".echo\tone\ntwo", true, "echo", []string{"one", "two"}, "one\ntwo"},
		{".", ".queue retry", true, "queue", []string{"retry"}, "retry"},
		{".", "ping", false, "", nil, ""},
		{".", ".", false, "", nil, ""},
		{".", ". ping", false, "", nil, ""},
		{".", "", false, "", nil, ""},
		{".", "hello .ping", false, "", nil, ""},
		{"!", "!HELP me", true, "help", []string{"me"}, "me"},
		{"b!", "B!help", false, "", nil, ""},
		{"#", "#ÄRGER x", true, "ärger", []string{"x"}, "x"},
		{"", ".ping", false, "", nil, ""},
		{".", "..ping", true, ".ping", nil, ""},
		{".", ".ping\u00a0arg", true, "ping", []string{"arg"}, "arg"},
		{".", "\xff.ping", false, "", nil, ""},
		{"\xf3", "\U000cb9e7", false, "", nil, ""}, // the prefix is the first byte of the text's only character
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"|"+tt.text, func(t *testing.T) {
			inv, ok := Parse(tt.prefix, tt.text)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, inv)
			}
			if !ok {
				return
			}
			if inv.Name != tt.name || !slices.Equal(inv.Args, tt.args) || inv.Raw != tt.raw {
				t.Errorf("got %+v, want name %q args %q raw %q", inv, tt.name, tt.args, tt.raw)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{".ping", ".echo a b", " .X\ty", ".", "", "..", ".é\u2003x", "\xff"} {
		f.Add(".", s)
		f.Add("!b", s)
	}
	f.Fuzz(func(t *testing.T, prefix, text string) {
		inv, ok := Parse(prefix, text)
		if !ok {
			if inv.Name != "" || inv.Args != nil || inv.Raw != "" {
				t.Fatalf("not ok but %+v", inv)
			}
			return
		}
		if prefix == "" || !strings.HasPrefix(strings.TrimLeftFunc(text, unicode.IsSpace), prefix) {
			t.Fatalf("ok for %q without prefix %q", text, prefix)
		}
		if inv.Name == "" || strings.IndexFunc(inv.Name, unicode.IsSpace) >= 0 || !utf8.ValidString(inv.Name) {
			t.Fatalf("bad name %q", inv.Name)
		}
		if inv.Name != strings.ToLower(inv.Name) {
			t.Fatalf("name %q is not lowercase", inv.Name)
		}
		if !slices.Equal(inv.Args, strings.Fields(inv.Raw)) {
			t.Fatalf("args %q are not the fields of raw %q", inv.Args, inv.Raw)
		}
		if inv.Raw != strings.TrimSpace(inv.Raw) || !strings.Contains(text, inv.Raw) {
			t.Fatalf("raw %q is not a trimmed part of %q", inv.Raw, text)
		}
		again, ok2 := Parse(prefix, prefix+inv.Name+" "+inv.Raw)
		if !ok2 || again.Name != strings.ToLower(inv.Name) || again.Raw != inv.Raw {
			t.Fatalf("reparse of %+v gave %+v", inv, again)
		}
	})
}
