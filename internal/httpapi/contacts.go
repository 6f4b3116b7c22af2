package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/contacts"
	"github.com/blacksky-bot/blacksky/internal/phone"
)

// Contacts looks recipients up; *contacts.Directory is one.
type Contacts interface {
	Lookup(ctx context.Context, jid types.JID) (contacts.Contact, error)
}

// contactBody is the answer of GET /api/v1/contacts/{phone-or-lid}.
type contactBody struct {
	// Phone is the number in international form, digits only; null when
	// only the LID is known.
	Phone *string `json:"phone"`
	// LID is the LID JID (…@lid); null when WhatsApp gave none.
	LID        *string `json:"lid"`
	OnWhatsApp bool    `json:"on_whatsapp"`
}

func (a *api) registerContacts(mux *http.ServeMux) {
	mux.Handle("/api/v1/contacts/{contact}", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet: a.getContact,
	})))
}

// getContact answers who a phone number, phone JID or LID JID is on
// WhatsApp, from what is known or by asking WhatsApp once (cached).
func (a *api) getContact(w http.ResponseWriter, r *http.Request) {
	if a.Contacts == nil {
		writeError(w, http.StatusServiceUnavailable, "contact lookups are not available in this process")
		return
	}
	jid, err := parseContact(r.PathValue("contact"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := a.Contacts.Lookup(r.Context(), jid)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, contacts.ErrNoClient) {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "5")
		}
		a.Logger.Warn("contact lookup failed", "contact", jid.String(), "err", err)
		writeError(w, status, "cannot look the contact up now: "+err.Error())
		return
	}
	var body contactBody
	if !c.Phone.IsEmpty() {
		body.Phone = &c.Phone.User
	}
	if !c.LID.IsEmpty() {
		lid := c.LID.String()
		body.LID = &lid
	}
	body.OnWhatsApp = c.OnWhatsApp
	writeJSON(w, http.StatusOK, body)
}

// errNotAContact says what the path may hold.
var errNotAContact = errors.New("contact must be a phone number in international form (4915123456789), a phone JID (4915123456789@s.whatsapp.net) or a LID (123456789012345@lid)")

func parseContact(s string) (types.JID, error) {
	if !strings.Contains(s, "@") {
		n, err := phone.Normalize(s)
		if err != nil {
			return types.JID{}, errNotAContact
		}
		return types.NewJID(n, types.DefaultUserServer), nil
	}
	user, server, _ := strings.Cut(s, "@")
	switch server {
	case types.DefaultUserServer:
		if n, err := phone.Normalize(user); err == nil && n == user {
			return types.NewJID(n, types.DefaultUserServer), nil
		}
	case types.HiddenUserServer:
		if user != "" && strings.Trim(user, "0123456789") == "" {
			return types.NewJID(user, types.HiddenUserServer), nil
		}
	}
	return types.JID{}, errNotAContact
}
