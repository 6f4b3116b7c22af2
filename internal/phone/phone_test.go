package phone_test

import (
	"errors"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/phone"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   string
		want string // empty means ErrInvalid
	}{
		// Ways people write one number.
		{"4915123456789", "4915123456789"},
		{"+4915123456789", "4915123456789"},
		{"+49 151-2345 6789", "4915123456789"},
		{"  +49 (151) 2345.6789\t", "4915123456789"},
		{"1 (555) 010-0199", "15550100199"},
		// Length limits: 7 to 15 digits.
		{"1234567", "1234567"},
		{"123456", ""},
		{"123456789012345", "123456789012345"},
		{"1234567890123456", ""},
		{"12 34 56", ""},             // 6 digits once separators are gone
		{"1-2-3-4-5-6-7", "1234567"}, // separators do not count
		{"+ 1234567", "1234567"},     // space after + is a separator
		{"(((1234567)))", "1234567"}, // so are brackets
		{"+-----------1234567", "1234567"},
		// National and international prefixes are not international form.
		{"015123456789", ""},
		{"004915123456789", ""},
		{"+0049151234567", ""},
		// Not a phone number.
		{"", ""},
		{"+", ""},
		{"   ", ""},
		{"++4915123456789", ""},
		{"49151234567a", ""},
		{"4915123456789@s.whatsapp.net", ""},
		{"49/151/2345678", ""},
		{"٤٩١٥١٢٣٤٥٦٧٨٩", ""}, // Arabic-Indic digits are not ASCII digits
		{"4915123456789\n4915123456780", ""},
		{"49151234\x0056789", ""},
		{"\xff4915123456789", ""},
	}
	for _, tt := range tests {
		got, err := phone.Normalize(tt.in)
		if tt.want == "" {
			if !errors.Is(err, phone.ErrInvalid) || got != "" {
				t.Errorf("Normalize(%q) = %q, %v; want \"\", ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"4915123456789", "+49 151-2345 6789", "(555) 010-0199", "0049151", "", "+", "1234567",
		"123456789012345", "1234567890123456", "٤٩١", "\xff", "+ +1234567",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := phone.Normalize(s)
		if err != nil {
			if !errors.Is(err, phone.ErrInvalid) || n != "" {
				t.Fatalf("Normalize(%q) = %q, %v; an error must be ErrInvalid with an empty result", s, n, err)
			}
			return
		}
		if len(n) < 7 || len(n) > 15 {
			t.Fatalf("Normalize(%q) = %q: want 7 to 15 digits", s, n)
		}
		if n[0] == '0' {
			t.Fatalf("Normalize(%q) = %q starts with 0", s, n)
		}
		for i := 0; i < len(n); i++ {
			if n[i] < '0' || n[i] > '9' {
				t.Fatalf("Normalize(%q) = %q contains a non-digit", s, n)
			}
		}
		again, err := phone.Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(Normalize(%q)) = %q, %v; want %q, nil", s, again, err, n)
		}
	})
}
