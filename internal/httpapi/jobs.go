package httpapi

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
)

// Jobs is the view of one kind of durable work the jobs API needs: its
// depths, its lag, and an operator's list, retry and purge. *jobs.Queue is
// one, for every kind (the outgoing queue's is outgoing.Queue.Jobs).
type Jobs interface {
	States() []string
	Depths(ctx context.Context) (map[string]int, error)
	Lag(ctx context.Context) (time.Duration, error)
	List(ctx context.Context, state string, before int64, limit int) ([]jobs.Summary, error)
	RetryDead(ctx context.Context) (int64, error)
	RetryOne(ctx context.Context, id int64) error
	PurgeDead(ctx context.Context) (int64, error)
	PurgeOne(ctx context.Context, id int64) error
}

var _ Jobs = (*jobs.Queue)(nil)

// jobsPath is the collection of every kind of work: outgoing messages,
// incoming ones, webhook events.
const jobsPath = "/api/v1/jobs"

// registerJobs adds the jobs endpoints to mux: the same depths, list,
// retry and purge for every kind, so that a failed incoming message or a
// dead webhook event is seen and retried like a dead outgoing message.
func (a *api) registerJobs(mux *http.ServeMux) {
	mux.Handle(jobsPath, a.protect(methods(map[string]http.HandlerFunc{http.MethodGet: a.jobsOverview})))
	mux.Handle(jobsPath+"/{kind}", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodGet:    a.withKind(a.listJobs),
		http.MethodDelete: a.withKind(a.purgeDeadJobs),
	})))
	mux.Handle(jobsPath+"/{kind}/retry-dead", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodPost: a.withKind(a.retryDeadJobs),
	})))
	mux.Handle(jobsPath+"/{kind}/{id}", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodDelete: a.withKind(a.purgeJob),
	})))
	mux.Handle(jobsPath+"/{kind}/{id}/retry", a.protect(methods(map[string]http.HandlerFunc{
		http.MethodPost: a.withKind(a.retryJob),
	})))
}

type kindHandler func(w http.ResponseWriter, r *http.Request, kind string, q Jobs)

// withKind resolves {kind}; an unknown kind is a 404 naming the known ones.
func (a *api) withKind(h kindHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		kind := r.PathValue("kind")
		q, ok := a.Jobs[kind]
		if !ok {
			writeError(w, http.StatusNotFound, "no kind of work "+strconv.Quote(kind)+"; known: "+joinKinds(a.Jobs))
			return
		}
		h(w, r, kind, q)
	}
}

func joinKinds(m map[string]Jobs) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// kindStatus is one kind's line of GET /api/v1/jobs.
type kindStatus struct {
	Depths     map[string]int `json:"depths"`
	LagSeconds float64        `json:"lag_seconds"`
}

func (a *api) jobsOverview(w http.ResponseWriter, r *http.Request) {
	out := map[string]kindStatus{}
	for kind, q := range a.Jobs {
		d, err := q.Depths(r.Context())
		if err != nil {
			a.queueError(w, r, err)
			return
		}
		lag, err := q.Lag(r.Context())
		if err != nil {
			a.queueError(w, r, err)
			return
		}
		out[kind] = kindStatus{Depths: d, LagSeconds: lag.Seconds()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"kinds": out})
}

func (a *api) listJobs(w http.ResponseWriter, r *http.Request, kind string, q Jobs) {
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(q.States(), state) {
		writeError(w, http.StatusBadRequest, "state "+strconv.Quote(state)+" is not one of "+kind+"'s states")
		return
	}
	before, ok := queryInt(w, r, "before", 0)
	if !ok {
		return
	}
	limit, ok := queryInt(w, r, "limit", defaultListLimit)
	if !ok {
		return
	}
	if limit < 1 || limit > 1000 {
		writeError(w, http.StatusBadRequest, "limit must be 1 to 1000")
		return
	}
	list, err := q.List(r.Context(), state, before, int(limit))
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	body := map[string]any{"jobs": list}
	if len(list) == int(limit) {
		body["next_before"] = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
}

// queryInt reads a non-negative integer query parameter, def when absent.
func queryInt(w http.ResponseWriter, r *http.Request, name string, def int64) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, name+" must be a non-negative integer")
		return 0, false
	}
	return n, true
}

func (a *api) purgeDeadJobs(w http.ResponseWriter, r *http.Request, kind string, q Jobs) {
	// Dead work is the kind's last state (dead, for every kind).
	states := q.States()
	if dead := states[len(states)-1]; r.URL.Query().Get("state") != dead {
		writeError(w, http.StatusBadRequest, "say state="+dead+": only "+dead+" "+kind+" work is purged in bulk")
		return
	}
	n, err := q.PurgeDead(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"purged": n})
}

func (a *api) retryDeadJobs(w http.ResponseWriter, r *http.Request, kind string, q Jobs) {
	n, err := q.RetryDead(r.Context())
	if err != nil {
		a.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"retried": n})
}

func (a *api) retryJob(w http.ResponseWriter, r *http.Request, kind string, q Jobs) {
	a.withJobID(w, r, kind, q.RetryOne, "retried")
}

func (a *api) purgeJob(w http.ResponseWriter, r *http.Request, kind string, q Jobs) {
	a.withJobID(w, r, kind, q.PurgeOne, "purged")
}

func (a *api) withJobID(w http.ResponseWriter, r *http.Request, kind string, op func(context.Context, int64) error, done string) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "the id must be a positive integer")
		return
	}
	switch err := op(r.Context(), id); {
	case errors.Is(err, jobs.ErrNotFound), errors.Is(err, outgoing.ErrNotFound), errors.Is(err, outgoing.ErrWrongState):
		writeError(w, http.StatusNotFound, "no "+kind+" job "+strconv.FormatInt(id, 10)+" in a state that allows this (retry: dead; purge: dead or done)")
	case err != nil:
		a.queueError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{done: id})
	}
}
