package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxControlBody bounds control API request bodies.
const maxControlBody = 64 << 10

// controlTimeout bounds phone actions (scan, code) started from the control API.
const controlTimeout = 30 * time.Second

type apiError struct {
	Error string `json:"error"`
}

type scanRequest struct {
	QR string `json:"qr"`
}

type codeRequest struct {
	Code string `json:"code"`
}

type contactRequest struct {
	Number string `json:"number"`
	// PhoneNumberOnly creates the contact without a LID (see AddPhoneNumberContact).
	PhoneNumberOnly bool `json:"phone_number_only,omitempty"`
}

// phoneReadRequest names the chat the phone reads.
type phoneReadRequest struct {
	Number string `json:"number"`
}

// idText is the body of a contact's action: the text to send, or the message to ask for again.
type idText struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// errBadRequest is a contact action's complaint about its input (400, not 409).
type errBadRequest string

func (e errBadRequest) Error() string { return string(e) }

// contactAction serves a POST that makes the contact in the path act on the
// JSON body; it answers {"id": ...}, 400 for bad input, 409 when the
// contact cannot act.
func (s *Server) contactAction(act func(context.Context, *Contact, idText) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ct := s.Contact(r.PathValue("number"))
		if ct == nil {
			writeError(w, http.StatusBadRequest, "unknown contact")
			return
		}
		var req idText
		if !readJSON(w, r, &req) {
			return
		}
		id, err := act(r.Context(), ct, req)
		writeIDResult(w, id, err)
	}
}

// withContact serves a request about the contact in the path, 400 for an unknown one.
func (s *Server) withContact(h func(http.ResponseWriter, *http.Request, *Contact)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ct := s.Contact(r.PathValue("number"))
		if ct == nil {
			writeError(w, http.StatusBadRequest, "unknown contact")
			return
		}
		h(w, r, ct)
	}
}

// reinstallResult is the contact after Reinstall and the kept messages it will never get.
type reinstallResult struct {
	contactInfo
	Dropped []string `json:"dropped"`
}

type faultRequest struct {
	Kind           string `json:"kind"`
	Duration       string `json:"duration,omitempty"`
	ImmediateClose bool   `json:"immediate_close,omitempty"`
}

type contactInfo struct {
	Number string `json:"number"`
	JID    string `json:"jid"`
	LID    string `json:"lid,omitempty"`
}

func infoOf(ct *Contact) contactInfo {
	ci := contactInfo{Number: ct.Number(), JID: ct.JID().String()}
	if lid := ct.LID(); !lid.IsEmpty() {
		ci.LID = lid.String()
	}
	return ci
}

// ControlHandler returns the JSON control API (also served on Addr for plain-HTTP connections).
//
//	GET    /control/trust                     Trust (addr = the host:port the request reached)
//	GET    /control/connections               []ConnInfo
//	GET    /control/events[?since=SEQ]        []Event (those after SEQ)
//	POST   /control/phone/scan                {"qr":"ref,noise,identity,adv"}
//	POST   /control/phone/code                {"code":"ABCD-EFGH"}
//	GET    /control/phone/inbox               []InboxMessage the phone decrypted (copies of all bot sends)
//	POST   /control/phone/read                {"number":"4915..."}: the phone reads that chat -> {"id": the message read}
//	GET    /control/contacts                  [{"number","jid","lid"}]
//	POST   /control/contacts                  {"number":"4915...","phone_number_only":false} -> 201
//	GET    /control/contacts/{number}          {"number","jid","lid"} (lid empty while addressed by number)
//	POST   /control/contacts/{number}/migrate  move to LID addressing -> {"number","jid","lid"}; 409 if it has its LID
//	GET    /control/contacts/{number}/inbox    []InboxMessage (arrival order, duplicates kept)
//	GET    /control/contacts/{number}/receipts []Receipt
//	POST   /control/contacts/{number}/send     {"text":"..."} -> {"id":"..."}
//	POST   /control/contacts/{number}/retry    {"id":"..."}: lose the session, ask the bot to resend
//	GET    /control/contacts/{number}/settings {"online":true,"read_receipts":true,"read_after_ms":-1} (ContactSettings; -1: reads only when told)
//	PUT    /control/contacts/{number}/settings the same, fields left out unchanged -> the new settings
//	POST   /control/contacts/{number}/read     {"ids":["..."]} (none, or no body: all unread) -> {"ids": those read now}; 409 for an ID not received
//	POST   /control/contacts/{number}/reinstall new Signal identity, kept messages dropped -> {"number","jid","lid","dropped":[IDs]}
//	GET    /control/faults                    []ActiveFault
//	POST   /control/faults                    {"kind":"ban","duration":"10s","immediate_close":false}
//	DELETE /control/faults                    clears every lasting fault
//	GET    /control/version                   {"minimum":"2.3000.N","current":"2.3000.M"}
//	POST   /control/version                   {"minimum":"...","current":"..."} (either) -> the new versions
//
// Errors are JSON {"error":"..."}: 400 for bad input or unknown contacts, 409 when a
// contact cannot send (no linked device), ask for a retry (no such message
// received, bot device offline) or read a message it has not received
// (kept for it while offline, or never sent), 413 for bodies over 64 KiB.
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /control/trust", func(w http.ResponseWriter, r *http.Request) {
		t := s.Trust()
		// The simulator shares the control API's listener, so the host:port this
		// request reached is dialable by the caller even when Listen is 0.0.0.0.
		if _, port, err := net.SplitHostPort(r.Host); err == nil && port != "" {
			t.Addr = r.Host
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("GET /control/connections", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Connections())
	})
	mux.HandleFunc("GET /control/events", func(w http.ResponseWriter, r *http.Request) {
		events := s.Events()
		if v := r.URL.Query().Get("since"); v != "" {
			since, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, "since must be an event sequence number")
				return
			}
			i := sort.Search(len(events), func(i int) bool { return events[i].Seq > since })
			events = events[i:]
		}
		writeJSON(w, http.StatusOK, events)
	})
	mux.HandleFunc("POST /control/phone/scan", func(w http.ResponseWriter, r *http.Request) {
		var req scanRequest
		if !readJSON(w, r, &req) {
			return
		}
		if req.QR == "" {
			writeError(w, http.StatusBadRequest, "qr is required")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
		defer cancel()
		if err := s.ScanQR(ctx, req.QR); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "linked"})
	})
	mux.HandleFunc("POST /control/phone/code", func(w http.ResponseWriter, r *http.Request) {
		var req codeRequest
		if !readJSON(w, r, &req) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
		defer cancel()
		if err := s.EnterCode(ctx, req.Code); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "linked"})
	})
	mux.HandleFunc("GET /control/contacts", func(w http.ResponseWriter, r *http.Request) {
		out := []contactInfo{}
		for _, n := range s.Contacts() {
			if ct := s.Contact(n); ct != nil {
				out = append(out, infoOf(ct))
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /control/contacts", func(w http.ResponseWriter, r *http.Request) {
		var req contactRequest
		if !readJSON(w, r, &req) {
			return
		}
		add := s.AddContact
		if req.PhoneNumberOnly {
			add = s.AddPhoneNumberContact
		}
		ct, err := add(req.Number)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, infoOf(ct))
	})
	mux.HandleFunc("GET /control/contacts/{number}", func(w http.ResponseWriter, r *http.Request) {
		ct := s.Contact(r.PathValue("number"))
		if ct == nil {
			writeError(w, http.StatusNotFound, "unknown contact")
			return
		}
		writeJSON(w, http.StatusOK, infoOf(ct))
	})
	mux.HandleFunc("POST /control/contacts/{number}/migrate", func(w http.ResponseWriter, r *http.Request) {
		ct, err := s.MigrateContact(r.PathValue("number"))
		switch {
		case errors.Is(err, ErrAlreadyLID):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			writeJSON(w, http.StatusOK, infoOf(ct))
		}
	})
	mux.HandleFunc("GET /control/contacts/{number}/inbox", func(w http.ResponseWriter, r *http.Request) {
		ct := s.Contact(r.PathValue("number"))
		if ct == nil {
			writeError(w, http.StatusBadRequest, "unknown contact")
			return
		}
		writeJSON(w, http.StatusOK, nonNil(ct.Inbox()))
	})
	mux.HandleFunc("POST /control/phone/read", func(w http.ResponseWriter, r *http.Request) {
		var req phoneReadRequest
		if !readJSON(w, r, &req) {
			return
		}
		id, err := s.PhoneReads(req.Number)
		writeIDResult(w, id, err)
	})
	mux.HandleFunc("GET /control/phone/inbox", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.PhoneInbox()))
	})
	mux.HandleFunc("GET /control/contacts/{number}/receipts", func(w http.ResponseWriter, r *http.Request) {
		ct := s.Contact(r.PathValue("number"))
		if ct == nil {
			writeError(w, http.StatusBadRequest, "unknown contact")
			return
		}
		writeJSON(w, http.StatusOK, nonNil(ct.Receipts()))
	})
	mux.HandleFunc("POST /control/contacts/{number}/send", s.contactAction(func(ctx context.Context, ct *Contact, req idText) (string, error) {
		if req.Text == "" {
			return "", errBadRequest("text is required")
		}
		return ct.Send(ctx, req.Text)
	}))
	mux.HandleFunc("POST /control/contacts/{number}/retry", s.contactAction(func(ctx context.Context, ct *Contact, req idText) (string, error) {
		if req.ID == "" {
			return "", errBadRequest("id is required")
		}
		return req.ID, ct.RequestRetry(ctx, req.ID)
	}))
	mux.HandleFunc("GET /control/contacts/{number}/settings", s.withContact(func(w http.ResponseWriter, r *http.Request, ct *Contact) {
		writeJSON(w, http.StatusOK, settingsJSON(ct.Settings()))
	}))
	mux.HandleFunc("PUT /control/contacts/{number}/settings", s.withContact(func(w http.ResponseWriter, r *http.Request, ct *Contact) {
		var req contactSettingsJSON
		if !readJSON(w, r, &req) {
			return
		}
		st, err := req.apply(ct.Settings())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, settingsJSON(ct.SetSettings(st)))
	}))
	mux.HandleFunc("POST /control/contacts/{number}/read", s.withContact(func(w http.ResponseWriter, r *http.Request, ct *Contact) {
		var req readRequest
		// No body reads everything unread, as {} does.
		if r.ContentLength != 0 && !readJSON(w, r, &req) {
			return
		}
		ids, err := ct.Read(req.IDs...)
		if err != nil {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, readResult{IDs: ids})
	}))
	mux.HandleFunc("POST /control/contacts/{number}/reinstall", s.withContact(func(w http.ResponseWriter, r *http.Request, ct *Contact) {
		dropped, err := ct.Reinstall(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, reinstallResult{contactInfo: infoOf(ct), Dropped: nonNil(dropped)})
	}))
	mux.HandleFunc("GET /control/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.ActiveFaults()))
	})
	mux.HandleFunc("DELETE /control/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /control/faults", func(w http.ResponseWriter, r *http.Request) {
		var req faultRequest
		if !readJSON(w, r, &req) {
			return
		}
		f, err := req.fault()
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := s.Inject(f); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "injected", "kind": string(f.Kind)})
	})
	mux.HandleFunc("GET /control/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.ClientVersions().wire())
	})
	mux.HandleFunc("POST /control/version", func(w http.ResponseWriter, r *http.Request) {
		var req clientVersionsJSON
		if !readJSON(w, r, &req) {
			return
		}
		v, err := req.parse()
		if err == nil && v.Minimum.IsZero() && v.Current.IsZero() {
			err = errors.New("set minimum, current or both")
		}
		if err == nil {
			v, err = s.SetClientVersions(v)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v.wire())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	return mux
}

func (req faultRequest) fault() (Fault, error) {
	kind, err := ParseFaultKind(req.Kind)
	if err != nil {
		return Fault{}, err
	}
	f := Fault{Kind: kind, ImmediateClose: req.ImmediateClose}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil {
			return Fault{}, fmt.Errorf("bad duration: %w", err)
		}
		if d < 0 {
			return Fault{}, errors.New("bad duration: negative")
		}
		f.Duration = d
	}
	return f, nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// readJSON decodes exactly one JSON object without unknown fields, answering 400 otherwise.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusBadRequest, "content type must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return false
		}
		writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return false
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad JSON: trailing data after the object")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// writeIDResult answers an action on a contact or the phone: the message
// ID it produced, 400 for a bad request, 409 when it cannot be done now.
func writeIDResult(w http.ResponseWriter, id string, err error) {
	var bad errBadRequest
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"id": id})
	}
}
