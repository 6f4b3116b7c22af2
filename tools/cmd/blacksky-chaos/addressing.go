package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The addressing of WhatsApp since its move to LIDs, in the chaos: most
// contacts have a LID and some of their messages are addressed to it; a
// few contacts start addressed by phone number only and are moved to
// their LID during the run (what the bot queued for them waits until
// then); and a few numbers have no WhatsApp account, whose messages must
// all end dead, "not on WhatsApp", never sent.

// addressing holds who is who for the run.
type addressing struct {
	lids   map[string]string // number -> LID JID, for contacts that have one from the start
	movers []string          // contacts addressed by number until migrated during the run
	nobody []string          // numbers without a WhatsApp account
}

// lidEvery addresses every lidEvery-th message of a LID contact to its LID.
const lidEvery = 3

// setUpAddressing creates the contacts to migrate and learns the LIDs.
func (h *harness) setUpAddressing(ctx context.Context) error {
	h.addr = addressing{lids: map[string]string{}}
	for _, c := range h.contacts {
		var ct struct{ LID string }
		if code := doJSON(ctx, "GET", h.sb.url+"/control/contacts/"+c, nil, &ct); code != http.StatusOK || ct.LID == "" {
			return fmt.Errorf("contact %s: HTTP %d, LID %q", c, code, ct.LID)
		}
		h.addr.lids[c] = ct.LID
	}
	for i := range max(1, len(h.contacts)/5) {
		n := fmt.Sprintf("1555200%04d", i)
		body := map[string]any{"number": n, "phone_number_only": true}
		if code := doJSON(ctx, "POST", h.sb.url+"/control/contacts", body, nil); code != http.StatusCreated {
			return fmt.Errorf("add phone-number contact %s: HTTP %d", n, code)
		}
		h.addr.movers = append(h.addr.movers, n)
	}
	h.contacts = append(h.contacts, h.addr.movers...)
	h.addr.nobody = []string{"15553000001", "15553000002"}
	return nil
}

// learnContacts asks the bot about every LID contact once, as an operator
// resolving a contact list would: a message addressed to a LID then joins
// the chat of the number (a LID nobody has resolved yet is a chat of its own).
func (h *harness) learnContacts(ctx context.Context, b *bot) error {
	for n, lid := range h.addr.lids {
		var got struct {
			LID string `json:"lid"`
		}
		if code := doJSON(ctx, "GET", b.url("/api/v1/contacts/"+n), nil, &got); code != http.StatusOK || got.LID != lid {
			return fmt.Errorf("GET /api/v1/contacts/%s: HTTP %d, lid %q; the sandbox says %s", n, code, got.LID, lid)
		}
	}
	return nil
}

// recipient is how message seq to number is addressed.
func (h *harness) recipient(number string, seq int) string {
	if lid, ok := h.addr.lids[number]; ok && seq%lidEvery == 0 {
		return lid
	}
	return number
}

// migrate moves the phone-number contacts to their LIDs, spread over the
// first half of the chaos, and returns how many it moved.
func (h *harness) migrate(ctx context.Context, within time.Duration) int {
	moved := 0
	step := within / time.Duration(len(h.addr.movers)+1)
	for _, n := range h.addr.movers {
		select {
		case <-ctx.Done():
			return moved
		case <-time.After(step):
		}
		if code := doJSON(ctx, "POST", h.sb.url+"/control/contacts/"+n+"/migrate", nil, nil); code != http.StatusOK {
			h.log.Warn("migrate contact", "contact", n, "status", code)
			continue
		}
		h.log.Info("chaos", "action", "migrate contact to its LID", "contact", n)
		moved++
	}
	return moved
}

// checkNobody checks that every message to a number without WhatsApp is
// dead for that reason.
func (h *harness) checkNobody(ctx context.Context, r *Report, msgs []sentMsg) {
	for _, m := range msgs {
		st, err := h.messageState(ctx, m.ID)
		if err == nil && st.State == "dead" && strings.Contains(st.LastError, "not on WhatsApp") {
			r.NotOnWhatsApp++
			continue
		}
		r.WrongFate++
		r.problem(fmt.Sprintf("to %s, which has no WhatsApp: %q ended %q (%s), want dead, not on WhatsApp", m.Contact, m.Text, st.State, st.LastError))
	}
}

func (h *harness) isNobody(number string) bool {
	for _, n := range h.addr.nobody {
		if n == number {
			return true
		}
	}
	return false
}
