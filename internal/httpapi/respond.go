package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// Never read as HTML, so < and > need no escaping: escaped, a text of
	// "<" took six times its size in the response (issue 13, case 7).
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, errorBody{Error: reason})
}

// decodeJSON reads exactly one JSON object with only known fields into v,
// writing a 4xx and returning false when the body is not that.
//
// What encoding/json would repair is refused too (strictjson.go): text that
// is not UTF-8, lone surrogates, repeated fields, field names in another case.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	err := decodeStrict(r.Body, v)
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
		return false
	}
	writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
	return false
}

// decodeStrict reads all of body and decodes exactly one JSON object of
// known fields from it into v.
func decodeStrict(body io.Reader, v any) error {
	raw, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("empty body; send a JSON object")
	}
	if err := checkStrictJSON(raw, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value in body")
	}
	if _, extra := dec.Token(); extra != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}
