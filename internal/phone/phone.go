// Package phone validates and normalizes the phone numbers that name
// WhatsApp accounts.
package phone

import (
	"errors"
	"strings"
)

// ErrInvalid is returned for text that cannot be a WhatsApp account's number.
var ErrInvalid = errors.New("must be a phone number in international form without the leading 0 or 00, 7 to 15 digits")

// Normalize turns "+49 151-2345 6789" into "4915123456789".
func Normalize(s string) (string, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return "", ErrInvalid
		}
	}
	n := b.String()
	if len(n) < 7 || len(n) > 15 || n[0] == '0' {
		return "", ErrInvalid
	}
	return n, nil
}
