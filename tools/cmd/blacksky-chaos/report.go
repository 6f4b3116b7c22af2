package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a chaos run.
type Report struct {
	Store    string `json:"store"`
	Seed     int64  `json:"seed"`
	Duration dur    `json:"duration"`
	Contacts int    `json:"contacts"`
	ChaosFor dur    `json:"chaos_for"` // --duration, or longer to finish the first round of actions
	Elapsed  dur    `json:"elapsed"`
	Drain    dur    `json:"drain"` // from the end of the chaos until the backlog was settled

	Sent       int `json:"sent"` // accepted by the API
	Delivered  int `json:"delivered"`
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	OutOfOrder int `json:"out_of_order"`
	Dead       int `json:"dead"`
	// NotOnWhatsApp counts messages to numbers without an account that
	// ended dead for that reason, as they must; WrongFate those that did not.
	NotOnWhatsApp int            `json:"not_on_whatsapp"`
	WrongFate     int            `json:"wrong_fate"`
	Migrations    int            `json:"migrations"` // contacts moved to their LID during the run
	DeadReasons   map[string]int `json:"dead_reasons,omitempty"`
	Resends       int            `json:"resends"`            // the same message ID received again: shown once by WhatsApp
	Unconfirmed   int            `json:"unconfirmed"`        // POSTs never answered before the end: not counted as sent
	Rejected      int            `json:"rejected"`           // POSTs refused with a 4xx
	Strangers     int            `json:"strangers"`          // inbox messages that are no accepted message
	PostRetries   int            `json:"post_retries"`       // POSTs repeated with the same idempotency key
	LongestWait   dur            `json:"longest_wait"`       // max(first arrival - enqueue)
	P99Wait       dur            `json:"p99_wait"`           // 99th percentile of the same
	Slowest       []string       `json:"slowest,omitempty"`  // the messages that waited longest, with when they were queued
	Problems      []string       `json:"problems,omitempty"` // examples of what went wrong, bounded

	// MostConnections is the most connections logged in to the account at
	// once, as the sandbox saw them: more than 1 is two processes driving
	// one account. Undecryptable counts messages a contact could not
	// decrypt any copy of; UndecryptableResends the copies that failed of
	// messages the contact had read already.
	MostConnections      int  `json:"most_connections"`
	Undecryptable        int  `json:"undecryptable"`
	UndecryptableResends int  `json:"undecryptable_resends"`
	EventsMissed         bool `json:"events_missed,omitempty"` // the sandbox dropped events before the run read them

	// ReceiptMismatches counts messages whose state in the API does not
	// match what their contact did (receipts.go); ReceiptsRead and
	// ReceiptsDelivered are the messages the API shows read, or delivered
	// and not read, at the end.
	ReceiptMismatches int `json:"receipt_mismatches"`
	ReceiptsRead      int `json:"receipts_read"`
	ReceiptsDelivered int `json:"receipts_delivered"`

	Actions         map[string]int `json:"actions"`
	ActionErrors    []string       `json:"action_errors,omitempty"`
	LeaderChanges   int            `json:"leader_changes"`
	BotStarts       int            `json:"bot_starts"`
	UnexpectedExits []string       `json:"unexpected_exits,omitempty"`
	LogDir          string         `json:"log_dir,omitempty"`

	arrived map[string]bool // message IDs a contact decrypted
}

// OK reports whether nothing was lost, duplicated or reordered, no message
// to a number without WhatsApp was anything but dead, the account never had
// two connections, every message reached its contact readable, and the API
// agrees with the contacts' receipts on every message.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.WrongFate == 0 &&
		r.MostConnections <= 1 && r.Undecryptable == 0 && !r.EventsMissed && r.ReceiptMismatches == 0
}

// connections copies what the connection watch saw; arrived are the
// message IDs some contact decrypted.
func (r *Report) connections(w *connWatch, arrived map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.MostConnections, r.EventsMissed = w.most, w.missed
	for _, e := range w.examples {
		r.problem(e)
	}
	for _, id := range sortedKeys(w.failed) {
		if arrived[id] {
			r.UndecryptableResends++
			r.problem("undecryptable resend of a message read already: " + w.failed[id])
			continue
		}
		r.Undecryptable++
		r.problem("undecryptable: " + w.failed[id])
	}
}

// dur is a duration written as text in JSON.
type dur time.Duration

func (d dur) String() string { return time.Duration(d).Round(time.Millisecond).String() }

func (d dur) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// maxProblems bounds the examples kept in the report.
const maxProblems = 20

// drain waits until every accepted message is in its contact's inbox or
// dead, or until --drain passes.
func (h *harness) drain(ctx context.Context, msgs []sentMsg) {
	deadline := time.Now().Add(h.cfg.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		seen, err := h.readInboxes(ctx)
		if err == nil && h.countOpen(ctx, msgs, seen) == 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	h.log.Warn("the backlog did not settle before --drain", "drain", h.cfg.drain)
}

// countOpen counts messages neither delivered nor dead.
func (h *harness) countOpen(ctx context.Context, msgs []sentMsg, seen map[string][]inboxMsg) int {
	delivered := map[string]bool{}
	for _, in := range seen {
		for _, m := range in {
			delivered[m.ID] = true
		}
	}
	// Asking for each message is slow; while the queue still holds work
	// that is answer enough.
	if n := h.queueBusy(ctx); n > 0 {
		return n
	}
	open := 0
	for _, m := range msgs {
		if delivered[m.WAID] {
			continue
		}
		if st, _ := h.messageState(ctx, m.ID); st.State != "dead" {
			open++
		}
	}
	return open
}

// queueBusy returns how many messages are pending or being sent.
func (h *harness) queueBusy(ctx context.Context) int {
	for _, b := range h.bots {
		var q struct {
			Depths map[string]int `json:"depths"`
		}
		if doJSON(ctx, "GET", b.url("/api/v1/queue"), nil, &q) == http.StatusOK {
			return q.Depths["pending"] + q.Depths["sending"]
		}
	}
	return 1 // nobody answered: not settled
}

// msgState is the part of GET /api/v1/messages/{id} the run needs.
type msgState struct {
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

// messageState asks any bot for a message's state.
func (h *harness) messageState(ctx context.Context, id int64) (msgState, error) {
	for _, b := range h.bots {
		var st msgState
		if doJSON(ctx, "GET", b.url(fmt.Sprintf("/api/v1/messages/%d", id)), nil, &st) == http.StatusOK {
			return st, nil
		}
	}
	return msgState{}, fmt.Errorf("message %d: no bot answered", id)
}

func (h *harness) readInboxes(ctx context.Context) (map[string][]inboxMsg, error) {
	out := map[string][]inboxMsg{}
	for _, c := range h.contacts {
		in, err := h.sb.inbox(ctx, c)
		if err != nil {
			return nil, err
		}
		out[c] = in
	}
	return out, nil
}

// check reads every inbox once more and compares it with what was accepted.
func (h *harness) check(ctx context.Context, s *sender, c *chaos) (*Report, error) {
	// The queue is idle, so only a frame a killed bot wrote before it died
	// can still reach an inbox. The sandbox handles a connection's frames
	// before it closes it: once only the leader's connection is open, every
	// frame has landed.
	err := poll(ctx, 30*time.Second, func() bool {
		n, err := h.sb.connections(ctx)
		return err == nil && n <= 1
	})
	if err != nil {
		h.log.Warn("connections of dead bots still open at the final check", "err", err)
	}
	seen, err := h.readInboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	r := &Report{Store: h.cfg.store, Seed: h.cfg.seed, Duration: dur(h.cfg.duration), Contacts: len(h.contacts),
		DeadReasons: map[string]int{}}
	s.mu.Lock()
	r.PostRetries, r.Rejected, r.Unconfirmed = s.retries, len(s.rejected), len(s.unconfirmed)
	unconfirmed := map[string]bool{}
	for _, t := range s.unconfirmed {
		unconfirmed[t] = true
	}
	s.mu.Unlock()
	r.Actions, r.ActionErrors = c.summary()

	var msgs, toNobody []sentMsg
	for _, m := range s.accepted() {
		if h.isNobody(m.Contact) {
			toNobody = append(toNobody, m)
		} else {
			msgs = append(msgs, m)
		}
	}
	r.Sent = len(msgs) + len(toNobody)
	h.checkNobody(ctx, r, toNobody)
	byText := map[string]sentMsg{}
	for _, m := range msgs {
		byText[m.Text] = m
	}
	var waits []wait
	arrived := map[string]bool{} // by message ID
	for _, contact := range h.contacts {
		waits = append(waits, r.contact(contact, seen[contact], byText, unconfirmed, arrived)...)
	}
	for _, m := range msgs {
		if arrived[m.WAID] {
			continue
		}
		st, err := h.messageState(ctx, m.ID)
		switch {
		case err == nil && st.State == "dead":
			r.Dead++
			r.DeadReasons[reason(st.LastError)]++
		default:
			r.Lost++
			r.problem(fmt.Sprintf("lost: %q (id %d, wa_id %s) is not at %s; queue state %q %s", m.Text, m.ID, m.WAID, m.Contact, st.State, st.LastError))
		}
	}
	r.waits(waits)
	r.arrived = arrived
	h.checkReceipts(ctx, r, msgs)
	return r, nil
}

// contact checks one inbox: first arrivals in enqueue order, each text
// under one message ID. It returns the waits of the messages that arrived.
func (r *Report) contact(contact string, in []inboxMsg, byText map[string]sentMsg, unconfirmed, arrived map[string]bool) []wait {
	var waits []wait
	idOfText := map[string]string{}
	lastSeq := 0
	for _, m := range in {
		if arrived[m.ID] {
			r.Resends++
			continue
		}
		sent, ok := byText[m.Text]
		switch {
		case !ok && unconfirmed[m.Text]:
			// Stored, but its POST never got an answer: not counted as sent.
			continue
		case !ok:
			r.Strangers++
			r.problem(fmt.Sprintf("stranger at %s: %q (id %s)", contact, m.Text, m.ID))
			continue
		case idOfText[m.Text] != "":
			r.Duplicated++
			r.problem(fmt.Sprintf("duplicated at %s: %q as %s and %s", contact, m.Text, idOfText[m.Text], m.ID))
			continue
		case sent.WAID != m.ID:
			r.Duplicated++
			r.problem(fmt.Sprintf("at %s: %q arrived as %s, queued as %s", contact, m.Text, m.ID, sent.WAID))
			continue
		}
		idOfText[m.Text] = m.ID
		arrived[m.ID] = true
		r.Delivered++
		if sent.Seq < lastSeq {
			r.OutOfOrder++
			r.problem(fmt.Sprintf("out of order at %s: #%d after #%d", contact, sent.Seq, lastSeq))
		}
		lastSeq = max(lastSeq, sent.Seq)
		waits = append(waits, wait{sent, m.Time.Sub(sent.EnqueuedAt)})
	}
	return waits
}

// wait is how long one message took from the queue to the inbox.
type wait struct {
	msg sentMsg
	d   time.Duration
}

// waits sets the longest and the 99th percentile wait, and names the
// slowest messages, so a long wait can be matched with the chaos log.
func (r *Report) waits(waits []wait) {
	if len(waits) == 0 {
		return
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i].d < waits[j].d })
	r.LongestWait = dur(waits[len(waits)-1].d)
	r.P99Wait = dur(waits[(len(waits)*99)/100].d)
	for i := len(waits) - 1; i >= 0 && i >= len(waits)-5; i-- {
		w := waits[i]
		r.Slowest = append(r.Slowest, fmt.Sprintf("%s: queued %s, waited %s",
			w.msg.Text, w.msg.EnqueuedAt.UTC().Format("15:04:05.000"), dur(w.d)))
	}
}

func (r *Report) problem(p string) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// reason shortens a dead message's last error to group them.
func reason(s string) string {
	if s == "" {
		return "(no reason given)"
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// print writes the report as a text table.
func (r *Report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(tw, "blacksky chaos run\t%s\n", verdict)
	fmt.Fprintf(tw, "store\t%s\n", r.Store)
	fmt.Fprintf(tw, "seed\t%d\n", r.Seed)
	fmt.Fprintf(tw, "chaos for\t%s (--duration %s; whole run %s; backlog settled %s after)\n", r.ChaosFor, r.Duration, r.Elapsed, r.Drain)
	fmt.Fprintf(tw, "contacts\t%d\n", r.Contacts)
	rows := []struct {
		name string
		v    int
		note string
	}{
		{"sent", r.Sent, "accepted by POST /api/v1/messages"},
		{"delivered", r.Delivered, "distinct message IDs in the inboxes"},
		{"lost", r.Lost, "accepted, neither delivered nor dead"},
		{"duplicated", r.Duplicated, "one text under two message IDs"},
		{"out-of-order", r.OutOfOrder, "first arrivals not in enqueue order, per contact"},
		{"dead", r.Dead, "given up by the queue, with a reason"},
		{"not on WhatsApp", r.NotOnWhatsApp, "to numbers without an account: dead, as they must be"},
		{"wrong fate", r.WrongFate, "to numbers without an account, and not dead for it"},
		{"migrations", r.Migrations, "contacts moved from their number to their LID mid-run"},
		{"resends", r.Resends, "same message ID again (WhatsApp shows it once)"},
		{"post retries", r.PostRetries, "POSTs repeated with the same idempotency key"},
		{"unconfirmed", r.Unconfirmed, "POSTs unanswered at the end (not counted as sent)"},
		{"rejected", r.Rejected, "POSTs refused with a 4xx"},
		{"strangers", r.Strangers, "inbox messages nobody sent"},
		{"most connections", r.MostConnections, "logged in to the account at once (more than 1: two processes drove it)"},
		{"undecryptable", r.Undecryptable, "messages no copy of which a contact could decrypt"},
		{"undecryptable resends", r.UndecryptableResends, "failed copies of messages the contact had read"},
		{"read", r.ReceiptsRead, "the API says read (the contact read it, read receipts on)"},
		{"delivered, not read", r.ReceiptsDelivered, "the API says delivered (the contact read it, read receipts off)"},
		{"receipts disagree", r.ReceiptMismatches, "the API's state is not what the contact's receipts said"},
		{"leader changes", r.LeaderChanges, "hand-overs between the two bots"},
		{"bot starts", r.BotStarts, "processes started, both bots"},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", row.name, row.v, row.note)
	}
	fmt.Fprintf(tw, "longest wait\t%s\tp99 %s\n", r.LongestWait, r.P99Wait)
	for _, k := range sortedKeys(r.DeadReasons) {
		fmt.Fprintf(tw, "dead reason\t%d\t%s\n", r.DeadReasons[k], k)
	}
	for _, k := range sortedKeys(r.Actions) {
		fmt.Fprintf(tw, "action\t%d\t%s\n", r.Actions[k], k)
	}
	tw.Flush()
	printList(w, "chaos actions that failed", r.ActionErrors)
	printList(w, "bot exits nobody caused", r.UnexpectedExits)
	printList(w, "slowest messages", r.Slowest)
	printList(w, "problems (first 20)", r.Problems)
	if r.LogDir != "" {
		fmt.Fprintf(w, "process logs: %s\n", r.LogDir)
	}
}

func printList(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n  %s\n", title, strings.Join(items, "\n  "))
}
