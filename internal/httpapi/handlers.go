package httpapi

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	State  string `json:"state"`
}

// readyz is 200 only when the bot can do its job: logged in to WhatsApp and
// with storage that can keep what it accepts (Storage). It answers anyone,
// so its reason names no number, host, path or session: the connection's
// reasons are fixed words and durations (supervisor.Status.Ready), the
// database's its kind of failure (store.CheckSummary).
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	st := a.Conn.Status()
	ok, reason := st.Ready()
	// Storage first: when it fails, that is why the bot cannot do its job
	// whatever the connection says (a deleted data directory also takes the
	// lease file, and the bot shows as a standby).
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.DB.Check(ctx); err != nil {
		// The reason is public: it names the kind of failure, the log the rest.
		ok, reason = false, "database: "+store.CheckSummary(err)
		a.Logger.Warn("not ready: the database check failed", "err", err)
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, readiness{Ready: ok, Reason: reason, State: string(st.State)})
}

type memory struct {
	HeapAllocMB float64 `json:"heap_alloc_mb"`
	SysMB       float64 `json:"sys_mb"`
	LimitMB     float64 `json:"limit_mb,omitempty"`
	Goroutines  int     `json:"goroutines"`
}

type statusBody struct {
	supervisor.Status
	Bot           string    `json:"bot"`
	Session       string    `json:"session"`
	Version       string    `json:"version"`
	Database      string    `json:"database"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Memory        memory    `json:"memory"`
	// Alerts are the newest owner alerts (logged out, banned, long outages ...).
	Alerts  []supervisor.Alert `json:"alerts"`
	Backups any                `json:"backups,omitempty"`
	// ReachoutLock is WhatsApp's reach-out lock (error 463) as the process
	// holding the account knows it.
	ReachoutLock *outgoing.ReachoutLock `json:"reachout_lock,omitempty"`
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := memory{
		HeapAllocMB: mb(ms.HeapAlloc),
		SysMB:       mb(ms.Sys),
		Goroutines:  runtime.NumGoroutine(),
	}
	if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < 1<<62 {
		mem.LimitMB = mb(uint64(limit))
	}
	var lock *outgoing.ReachoutLock
	if a.Reachout != nil {
		l := a.Reachout()
		lock = &l
	}
	writeJSON(w, http.StatusOK, statusBody{
		Status:        a.Conn.Status(),
		Bot:           a.BotName,
		Session:       a.Session,
		Version:       a.Version,
		Database:      a.Database,
		StartedAt:     a.Started.UTC(),
		UptimeSeconds: int64(time.Since(a.Started).Seconds()),
		Memory:        mem,
		Alerts:        a.Conn.Alerts(),
		Backups:       a.backups(r.Context()),
		ReachoutLock:  lock,
	})
}

// statusDBBudget bounds what /status asks the database: it must answer
// within about a second whatever the database does (a black-holed
// connection would otherwise hold it until the client gives up).
const statusDBBudget = time.Second

func (a *api) backups(ctx context.Context) any {
	if a.Backups == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusDBBudget)
	defer cancel()
	return a.Backups(ctx)
}

func mb(b uint64) float64 {
	return float64(b*10>>20) / 10
}
