package config_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/config"
)

// WA_VERSION pins the client version presented to WhatsApp; a value that is
// not a version stops the start with one line (exit 2) rather than reaching
// WhatsApp as a wrapped or truncated number.
func TestWAVersion(t *testing.T) {
	if c := mustLoad(t, env()); c.WAVersion != [3]uint32{} {
		t.Errorf("unset WA_VERSION gave %v; want zero (the built-in version)", c.WAVersion)
	}
	for value, want := range map[string][3]uint32{
		"2.3000.1012345678":   {2, 3000, 1012345678},
		" 2.3000.4294967295 ": {2, 3000, 4294967295},
	} {
		if c := mustLoad(t, env("WA_VERSION", value)); c.WAVersion != want {
			t.Errorf("WA_VERSION=%q gave %v; want %v", value, c.WAVersion, want)
		}
	}
	for _, value := range []string{
		"2.3000", "2.24.25.78", "2.3000.x", "2.3000.-1", "2.3000.+1", "2.3000.4294967296",
		"0.0.0", "v2.3000.1", "2..1", "2.3000.1 beta",
	} {
		t.Run(value, func(t *testing.T) {
			ce := loadErr(t, env("WA_VERSION", value))
			checkError(t, ce, "WA_VERSION")
		})
	}
}

func FuzzWAVersion(f *testing.F) {
	for _, seed := range []string{"2.3000.1012345678", "2.3000.4294967296", "0.0.0", "1.2", "2.3000.-1", "٢.3000.1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := config.Load(env("WA_VERSION", value))
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		v := c.WAVersion
		if strings.TrimSpace(value) == "" {
			if v != [3]uint32{} {
				t.Fatalf("empty WA_VERSION gave %v", v)
			}
			return
		}
		if v == [3]uint32{} {
			t.Fatalf("WA_VERSION=%q accepted as zero", value)
		}
		// Accepted means exactly three unsigned 32-bit numbers, each kept as written.
		parts := strings.Split(strings.TrimSpace(value), ".")
		if len(parts) != 3 {
			t.Fatalf("WA_VERSION=%q accepted as %v", value, v)
		}
		for i, part := range parts {
			if n, err := strconv.ParseUint(part, 10, 32); err != nil || uint32(n) != v[i] {
				t.Fatalf("WA_VERSION=%q accepted as %v", value, v)
			}
		}
	})
}
