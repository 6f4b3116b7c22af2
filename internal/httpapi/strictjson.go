package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// encoding/json repairs what it should refuse: bytes that are not UTF-8
// and \u escapes of lone surrogates become U+FFFD, field names match their
// struct field whatever their case, and of two fields with one name the
// last wins. A request body is checked for each of these before it is
// decoded, so a client learns which field to fix instead of having
// something else stored than it sent (issue 13, case 10).

// checkStrictJSON returns an error naming the field when body holds text
// encoding/json would repair, or a top-level field of the object that is
// repeated or that names a field of v (a pointer to a struct) only in
// another case.
func checkStrictJSON(body []byte, v any) error {
	if err := checkJSONText(body); err != nil {
		return err
	}
	return checkJSONFields(body, jsonFieldNames(v))
}

// checkJSONText scans body's strings for bytes that are not UTF-8 and for
// lone surrogate escapes, naming the top-level field they are in.
func checkJSONText(body []byte) error {
	depth, field, expectKey := 0, "", false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			depth++
			expectKey = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case ':':
			expectKey = false
		case '"':
			end, err := scanJSONString(body, i+1)
			isKey := expectKey && depth == 1
			if err != nil {
				if isKey {
					return fmt.Errorf("a field name: %w", err)
				}
				return fmt.Errorf("field %q: %w", field, err)
			}
			if isKey {
				field, _ = strconv.Unquote(string(body[i : end+1]))
			}
			i = end
		default:
			if body[i] >= utf8.RuneSelf {
				return errors.New("the body is not valid UTF-8")
			}
		}
	}
	return nil
}

// scanJSONString checks the string whose contents start at body[start] and
// returns the index of its closing quote.
func scanJSONString(body []byte, start int) (int, error) {
	for j := start; j < len(body); {
		switch c := body[j]; {
		case c == '"':
			return j, nil
		case c == '\\':
			if j+1 < len(body) && body[j+1] == 'u' {
				n, err := scanUnicodeEscape(body, j)
				if err != nil {
					return 0, err
				}
				j += n
				continue
			}
			j += 2
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(body[j:])
			if r == utf8.RuneError && size <= 1 {
				return 0, errors.New("not valid UTF-8")
			}
			j += size
		}
	}
	return 0, errors.New("unterminated string")
}

// scanUnicodeEscape checks the \uXXXX escape at body[j] (and the low half
// after a high surrogate) and returns its length.
func scanUnicodeEscape(body []byte, j int) (int, error) {
	r, ok := hex4(body, j)
	if !ok {
		return 0, errors.New(`a \u escape without four hex digits`)
	}
	switch {
	case utf16.IsSurrogate(r) && r >= 0xDC00:
		return 0, fmt.Errorf(`a lone surrogate \u%04x (not a character)`, r)
	case utf16.IsSurrogate(r):
		low, ok := hex4(body, j+6)
		if !ok || low < 0xDC00 || low > 0xDFFF {
			return 0, fmt.Errorf(`a lone surrogate \u%04x (not a character)`, r)
		}
		return 12, nil
	}
	return 6, nil
}

// hex4 reads the rune of a \uXXXX escape at body[j].
func hex4(body []byte, j int) (rune, bool) {
	if j+6 > len(body) || body[j] != '\\' || body[j+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(body[j+2:j+6]), 16, 16)
	return rune(n), err == nil
}

// checkJSONFields refuses a top-level field named twice, or named in
// another case than the one known (names are the json names of v's fields).
func checkJSONFields(body []byte, known map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // not an object: the decoder says why
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("field %q appears twice", name)
		}
		seen[name] = true
		if !known[name] {
			for k := range known {
				if strings.EqualFold(k, name) {
					return fmt.Errorf("unknown field %q: field names are case-sensitive, did you mean %q?", name, k)
				}
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// jsonFieldNames lists the json names of the fields of the struct v points to.
func jsonFieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	if t == nil || t.Kind() != reflect.Struct {
		return names
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	return names
}
