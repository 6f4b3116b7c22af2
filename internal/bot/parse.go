package bot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Invocation is a command call parsed from a message text.
type Invocation struct {
	// Name is the command name as typed, lowercased.
	Name string
	// Args are the words after the name, split on whitespace.
	Args []string
	// Raw is everything after the name with surrounding whitespace trimmed
	// (line breaks and inner spacing kept).
	Raw string
}

// Parse reads text as PREFIX+name followed by arguments. Leading whitespace
// is ignored; the name must follow the prefix directly and ends at the first
// whitespace. It reports false for text that is not a command: no prefix,
// an empty prefix, or nothing after the prefix. A prefix that is not valid
// UTF-8 matches nothing, since it could match part of a character.
func Parse(prefix, text string) (Invocation, bool) {
	if prefix == "" || !utf8.ValidString(prefix) || !utf8.ValidString(text) {
		return Invocation{}, false
	}
	text = strings.TrimLeftFunc(text, unicode.IsSpace)
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return Invocation{}, false
	}
	end := strings.IndexFunc(rest, unicode.IsSpace)
	if end < 0 {
		end = len(rest)
	}
	name := rest[:end]
	if name == "" {
		return Invocation{}, false
	}
	raw := strings.TrimSpace(rest[end:])
	return Invocation{Name: strings.ToLower(name), Args: strings.Fields(raw), Raw: raw}, true
}
