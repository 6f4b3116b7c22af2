package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// Outgoing is the view of the outgoing message queue the messages API needs;
// *outgoing.Queue is one.
type Outgoing interface {
	Enqueue(ctx context.Context, req outgoing.Request) (outgoing.Message, bool, error)
	Get(ctx context.Context, id int64) (outgoing.Message, error)
	List(ctx context.Context, f outgoing.Filter) ([]outgoing.Message, error)
	Retry(ctx context.Context, id int64) (outgoing.Message, error)
	RetryAllDead(ctx context.Context) (int64, error)
	Purge(ctx context.Context, id int64) error
	PurgeDead(ctx context.Context) (int64, error)
	Depths(ctx context.Context) (map[outgoing.State]int, error)
	OldestPendingAge(ctx context.Context) (time.Duration, error)
	Receipts(ctx context.Context, id int64) ([]outgoing.StoredReceipt, error)
}

var _ Outgoing = (*outgoing.Queue)(nil)

const (
	// maxMessageBody bounds the body of POST /api/v1/messages: large enough
	// for the longest text the queue accepts even when every byte of it is
	// JSON-escaped (\u00XX), so an over-long text is refused with a 400 that
	// says so rather than a bare 413.
	maxMessageBody = 6*outgoing.MaxTextBytes + 6*outgoing.MaxIdempotencyKeyBytes + 16<<10
	// backlogRetryAfter is the Retry-After, in seconds, sent with a full backlog.
	backlogRetryAfter = "30"
	// defaultListLimit is the page size of GET /api/v1/messages without limit.
	defaultListLimit = 100
	// databaseRetryAfter is the Retry-After, in seconds, of a 503 for a
	// database that does not answer: about what PostgreSQL takes to restart.
	databaseRetryAfter = "5"
	// listPreview is how many characters of each text a list shows (the
	// whole text is at /api/v1/messages/{id}): a page of 1,000 messages is
	// then at most about 1 MiB of text, however long the texts are.
	listPreview = 256
)

// messagesPath is the collection every message endpoint hangs off.
const messagesPath = "/api/v1/messages"

// registerMessages adds the message and queue endpoints to mux. Routes are
// registered by path, not by method, so that a wrong method gets the
// package's JSON 405 instead of the mux's plain-text one.
func (a *api) registerMessages(mux *http.ServeMux) {
	if q, ok := a.Outgoing.(*outgoing.Queue); ok && q == nil {
		a.Outgoing = nil // a nil *Queue in the interface is no queue either
	}
	mux.Handle(messagesPath, a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet:    a.withQueue(a.listMessages),
		http.MethodPost:   a.withQueue(a.postMessage),
		http.MethodDelete: a.withQueue(a.purgeMessages),
	})))
	mux.Handle(messagesPath+"/retry-dead", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodPost: a.withQueue(a.retryDead),
	})))
	mux.Handle(messagesPath+"/{id}", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet:    a.withQueue(a.getMessage),
		http.MethodDelete: a.withQueue(a.deleteMessage),
	})))
	mux.Handle(messagesPath+"/{id}/receipts", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet: a.withQueue(a.messageReceipts),
	})))
	mux.Handle(messagesPath+"/{id}/retry", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodPost: a.withQueue(a.retryMessage),
	})))
	mux.Handle("/api/v1/queue", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet: a.withQueue(a.queueStatus),
	})))
}

// methodOrder fixes the order methods are listed in Allow headers.
var methodOrder = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methods dispatches on the request method, answering HEAD like GET and
// anything else unlisted with a JSON 405 and an Allow header.
func methods(hs map[string]http.HandlerFunc) http.HandlerFunc {
	var allowed []string
	for _, m := range methodOrder {
		if hs[m] != nil {
			allowed = append(allowed, m)
		}
	}
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		if h := hs[m]; h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "use "+strings.Join(allowed, " or ")+" for "+r.URL.Path)
	}
}

// withQueue answers 503 while no queue is configured.
func (a *api) withQueue(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Outgoing == nil {
			writeError(w, http.StatusServiceUnavailable, "queue not available")
			return
		}
		h(w, r)
	}
}

// queueError answers with the status an outgoing queue error stands for.
func (a *api) queueError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, outgoing.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, outgoing.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, outgoing.ErrWrongState):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, outgoing.ErrBacklogFull):
		w.Header().Set("Retry-After", backlogRetryAfter)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case store.IsUnavailable(err):
		// Down, restarting, full, or no answer within the request's
		// deadline: trying again later may work (issue 13, case 6).
		a.Logger.Warn("outgoing request: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", databaseRetryAfter)
		writeError(w, http.StatusServiceUnavailable, "database unavailable, try again later: "+err.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		writeError(w, http.StatusServiceUnavailable, "request canceled: "+err.Error())
	default:
		a.Logger.Error("outgoing request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "queue: "+err.Error())
	}
}

type postMessageRequest struct {
	To             string `json:"to"`
	Text           string `json:"text"`
	IdempotencyKey string `json:"idempotency_key"`
}

// enqueued is the answer to POST /api/v1/messages: the stored message and
// whether this request created it.
type enqueued struct {
	outgoing.Message
	Created bool `json:"created"`
}

// postMessage queues a message. Delivery is asynchronous, so a new message
// is 202 Accepted; a repeated idempotency key is 200 with the message first
// queued under it.
func (a *api) postMessage(w http.ResponseWriter, r *http.Request) {
	var req postMessageRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	switch {
	case strings.TrimSpace(req.To) == "":
		writeError(w, http.StatusBadRequest, `"to" is required: a phone number in international form or a chat JID`)
		return
	case req.Text == "":
		writeError(w, http.StatusBadRequest, `"text" is required`)
		return
	}
	msg, created, err := a.Outgoing.Enqueue(r.Context(), outgoing.Request{To: req.To, Text: req.Text, IdempotencyKey: req.IdempotencyKey})
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	w.Header().Set("Location", messagesPath+"/"+strconv.FormatInt(msg.ID, 10))
	code := http.StatusAccepted
	if !created {
		code = http.StatusOK
	}
	writeJSON(w, code, enqueued{Message: msg, Created: created})
}

// messageID parses the {id} path segment, answering 400 when it is not a
// positive decimal number.
func messageID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strings.TrimLeft(s, "0123456789") != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("message id %q is not a positive whole number", s))
		return 0, false
	}
	return id, true
}

func (a *api) getMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	msg, err := a.Outgoing.Get(r.Context(), id)
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, msg)
}

// messageReceipts lists the receipts stored for a message: every device's
// (and, in a group, every participant's) delivered, read and played.
func (a *api) messageReceipts(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	rs, err := a.Outgoing.Receipts(r.Context(), id)
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"receipts": rs})
}

// retryMessage puts a dead message back to pending.
func (a *api) retryMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	msg, err := a.Outgoing.Retry(r.Context(), id)
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, msg)
}

// deleteMessage purges one dead or sent message.
func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	if err := a.Outgoing.Purge(r.Context(), id); err != nil {
		a.queueError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) retryDead(w http.ResponseWriter, r *http.Request) {
	n, err := a.Outgoing.RetryAllDead(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"retried": n})
}

// query reads a URL query that may only hold the named parameters, each at
// most once, answering 400 otherwise.
func query(w http.ResponseWriter, r *http.Request, known ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid query string: "+err.Error())
		return nil, false
	}
	for name, vs := range q {
		found := false
		for _, k := range known {
			found = found || k == name
		}
		switch {
		case !found:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; this endpoint takes %s", name, strings.Join(known, ", ")))
			return nil, false
		case len(vs) > 1:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q is given %d times", name, len(vs)))
			return nil, false
		}
	}
	return q, true
}

// positive parses an optional positive integer query parameter.
func positive(w http.ResponseWriter, q url.Values, name string) (int64, bool) {
	s := q.Get(name)
	if s == "" {
		if q.Has(name) {
			writeError(w, http.StatusBadRequest, name+" is empty")
			return 0, false
		}
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strings.TrimLeft(s, "0123456789") != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q is not a positive whole number", name, s))
		return 0, false
	}
	return n, true
}

type messageList struct {
	Messages []outgoing.Message `json:"messages"`
	// NextBefore is the before= of the next (older) page; absent on the last.
	NextBefore int64 `json:"next_before,omitempty"`
}

// listMessages pages through messages, newest first.
func (a *api) listMessages(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "state", "to", "before", "limit")
	if !ok {
		return
	}
	state := outgoing.State(q.Get("state"))
	if q.Has("state") && !state.Valid() {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown state %q; use one of %s", state, stateNames()))
		return
	}
	if q.Has("to") && strings.TrimSpace(q.Get("to")) == "" {
		writeError(w, http.StatusBadRequest, "to is empty")
		return
	}
	before, ok := positive(w, q, "before")
	if !ok {
		return
	}
	limit, ok := positive(w, q, "limit")
	if !ok {
		return
	}
	if limit == 0 {
		limit = defaultListLimit
	}
	if limit > outgoing.MaxListLimit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %d is more than %d", limit, outgoing.MaxListLimit))
		return
	}
	// One more than asked for tells whether an older page exists.
	fetch := min(int(limit)+1, outgoing.MaxListLimit)
	msgs, err := a.Outgoing.List(r.Context(), outgoing.Filter{State: state, To: q.Get("to"), BeforeID: before, Limit: fetch, Preview: listPreview})
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	out := messageList{Messages: msgs}
	if len(msgs) > int(limit) || (fetch == int(limit) && len(msgs) == fetch) {
		out.Messages = msgs[:limit]
		out.NextBefore = out.Messages[limit-1].ID
	}
	if out.Messages == nil {
		out.Messages = []outgoing.Message{}
	}
	writeJSON(w, http.StatusOK, out)
}

// purgeMessages deletes every dead message; it insists on state=dead so
// that a bare DELETE of the collection cannot be sent by mistake.
func (a *api) purgeMessages(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "state")
	if !ok {
		return
	}
	if st := q.Get("state"); st != string(outgoing.Dead) {
		if st == "" {
			writeError(w, http.StatusBadRequest, "state=dead is required: only dead messages can be purged in bulk")
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot purge state %q: only dead messages can be purged in bulk", st))
		}
		return
	}
	n, err := a.Outgoing.PurgeDead(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"purged": n})
}

type queueBody struct {
	Depths                  map[outgoing.State]int `json:"depths"`
	OldestPendingAgeSeconds float64                `json:"oldest_pending_age_seconds"`
}

func (a *api) queueStatus(w http.ResponseWriter, r *http.Request) {
	depths, err := a.Outgoing.Depths(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	age, err := a.Outgoing.OldestPendingAge(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, queueBody{Depths: depths, OldestPendingAgeSeconds: age.Round(time.Millisecond).Seconds()})
}

func stateNames() string {
	var names []string
	for _, s := range outgoing.States() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}
