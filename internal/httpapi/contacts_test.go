package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/contacts"
	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/metrics"
)

// fakeContacts knows one contact by number and LID; other numbers are not
// on WhatsApp.
type fakeContacts struct {
	asked []types.JID
	err   error
}

var (
	knownPN  = types.NewJID("4915123456789", types.DefaultUserServer)
	knownLID = types.NewJID("211111111111111", types.HiddenUserServer)
)

func (f *fakeContacts) Lookup(_ context.Context, jid types.JID) (contacts.Contact, error) {
	f.asked = append(f.asked, jid)
	if f.err != nil {
		return contacts.Contact{}, f.err
	}
	if jid == knownPN || jid == knownLID {
		return contacts.Contact{Phone: knownPN, LID: knownLID, OnWhatsApp: true}, nil
	}
	return contacts.Contact{Phone: jid}, nil
}

func TestContactLookup(t *testing.T) {
	fc := &fakeContacts{}
	h := httpapi.New(httpapi.Options{Conn: &fakeConn{}, DB: &fakeDB{}, Metrics: metrics.New(), Contacts: fc})
	f := &fixture{h: h}
	for _, path := range []string{"+49%20151%202345%206789", "4915123456789", "4915123456789@s.whatsapp.net", "211111111111111@lid"} {
		w := f.do(http.MethodGet, "/api/v1/contacts/"+path, "", loopback)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
		}
		m := decode(t, w)
		if m["phone"] != "4915123456789" || m["lid"] != "211111111111111@lid" || m["on_whatsapp"] != true {
			t.Errorf("%s: %v", path, m)
		}
	}
	m := decode(t, f.do(http.MethodGet, "/api/v1/contacts/4915100000000", "", loopback))
	if m["phone"] != "4915100000000" || m["lid"] != nil || m["on_whatsapp"] != false {
		t.Errorf("number without an account: %v", m)
	}
	asked := len(fc.asked)
	for _, bad := range []string{"hello", "0151234", "x@s.whatsapp.net@anything", "4915123456789:3@s.whatsapp.net", "120363025246125486@g.us", "abc@lid", "@lid"} {
		wantError(t, f.do(http.MethodGet, "/api/v1/contacts/"+bad, "", loopback), http.StatusBadRequest)
	}
	if len(fc.asked) != asked {
		t.Errorf("bad input reached the lookup: %v", fc.asked[asked:])
	}
	fc.err = contacts.ErrNoClient
	w := f.do(http.MethodGet, "/api/v1/contacts/4915123456789", "", loopback)
	wantError(t, w, http.StatusServiceUnavailable)
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	fc.err = errors.New("iq timed out")
	wantError(t, f.do(http.MethodGet, "/api/v1/contacts/4915123456789", "", loopback), http.StatusBadGateway)
	// The endpoint is protected like the rest of the API.
	wantError(t, f.do(http.MethodGet, "/api/v1/contacts/4915123456789", "", fromAddr("203.0.113.9:4000")), http.StatusForbidden)
}
