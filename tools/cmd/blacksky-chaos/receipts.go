package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Receipts in the chaos: every contact's phone reads what it gets a moment
// after it arrives, and every readersOff-th has read receipts turned off.
// So when the backlog has settled, the API must say of every message that
// reached its contact that it was read (or, for those contacts, delivered
// and never read), and of every other one that it was not delivered: the
// receipts the contacts sent and the state the bot shows agree, through
// every fault, kill and hand-over.

const (
	// readAfter is how long a contact's phone takes to read a message.
	readAfter = 200 * time.Millisecond
	// readersOff: every readersOff-th contact has read receipts off.
	readersOff = 3
	// receiptsSettle bounds the wait, after the backlog settled, for the
	// last receipts (a read comes readAfter after its delivery, and a
	// bot that was just restarted gets what waited for it at login).
	receiptsSettle = time.Minute
)

// setUpReaders makes the contacts read what they get, some without telling.
func (h *harness) setUpReaders(ctx context.Context) error {
	h.readReceipts = map[string]bool{}
	for i, c := range h.contacts {
		on := i%readersOff != readersOff-1
		body := map[string]any{"read_receipts": on, "read_after_ms": readAfter.Milliseconds()}
		if code := doJSON(ctx, "PUT", h.sb.url+"/control/contacts/"+c+"/settings", body, nil); code != http.StatusOK {
			return fmt.Errorf("settings of contact %s: HTTP %d", c, code)
		}
		h.readReceipts[c] = on
	}
	return nil
}

// wantState is the state the API must end in for m: read or delivered
// when it reached its contact (arrived), by the contact's privacy; for a
// message that did not, anything but a receipt's state.
func (h *harness) wantState(m sentMsg, arrived bool) string {
	switch {
	case !arrived:
		return ""
	case h.readReceipts[m.Contact]:
		return "read"
	}
	return "delivered"
}

// receiptStates are the states only a receipt gives.
var receiptStates = map[string]bool{"delivered": true, "read": true, "played": true}

// agrees reports whether the API's state st for m matches what its contact did.
func (h *harness) agrees(m sentMsg, arrived bool, st string) bool {
	if want := h.wantState(m, arrived); want != "" {
		return st == want
	}
	return !receiptStates[st]
}

// checkReceipts waits up to receiptsSettle for the API to agree with the
// contacts on every message, then counts and names those that do not.
func (h *harness) checkReceipts(ctx context.Context, r *Report, msgs []sentMsg) {
	var states map[int64]string
	disagree := func() []sentMsg {
		var out []sentMsg
		for _, m := range msgs {
			if st, ok := states[m.ID]; !ok || !h.agrees(m, r.arrived[m.WAID], st) {
				out = append(out, m)
			}
		}
		return out
	}
	var bad []sentMsg
	poll(ctx, receiptsSettle, func() bool {
		var err error
		if states, err = h.listStates(ctx); err != nil {
			return false
		}
		bad = disagree()
		return len(bad) == 0
	})
	r.ReceiptsRead, r.ReceiptsDelivered = 0, 0
	for _, st := range states {
		switch st {
		case "read":
			r.ReceiptsRead++
		case "delivered":
			r.ReceiptsDelivered++
		}
	}
	r.ReceiptMismatches = len(bad)
	for _, m := range bad {
		r.problem(fmt.Sprintf("receipts disagree: %q (id %d) to %s: the API says %q, the contact %s",
			m.Text, m.ID, m.Contact, states[m.ID], h.contactSays(m, r.arrived[m.WAID])))
	}
}

// contactSays describes what m's contact did, for a problem line.
func (h *harness) contactSays(m sentMsg, arrived bool) string {
	switch want := h.wantState(m, arrived); want {
	case "":
		return "never got it"
	case "read":
		return "got and read it, read receipts on"
	default:
		return "got and read it, read receipts off"
	}
}

// listStates reads every message's state from a bot's API, paging the list.
func (h *harness) listStates(ctx context.Context) (map[int64]string, error) {
	for _, b := range h.bots {
		out := map[int64]string{}
		path := "/api/v1/messages?limit=1000"
		for {
			var page struct {
				Messages []struct {
					ID    int64  `json:"id"`
					State string `json:"state"`
				} `json:"messages"`
				NextBefore int64 `json:"next_before"`
			}
			if doJSON(ctx, "GET", b.url(path), nil, &page) != http.StatusOK {
				break
			}
			for _, m := range page.Messages {
				out[m.ID] = m.State
			}
			if page.NextBefore == 0 {
				return out, nil
			}
			path = "/api/v1/messages?limit=1000&before=" + strconv.FormatInt(page.NextBefore, 10)
		}
	}
	return nil, fmt.Errorf("list messages: no bot answered")
}
