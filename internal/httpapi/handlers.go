package httpapi

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"rsc.io/qr"

	"github.com/blacksky-bot/blacksky/internal/outbox"
	"github.com/blacksky-bot/blacksky/internal/phone"
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
	ReachoutLock *outbox.ReachoutLock `json:"reachout_lock,omitempty"`
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
	var lock *outbox.ReachoutLock
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

func (a *api) pairJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Conn.Pairing())
}

type codeRequest struct {
	Phone string `json:"phone"`
}

// pairCode asks for a pairing code for a phone number; it changes what the
// bot does, so it sits behind the token like every such endpoint.
func (a *api) pairCode(w http.ResponseWriter, r *http.Request) {
	var req codeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	number, err := phone.Normalize(req.Phone)
	if err != nil {
		writeError(w, http.StatusBadRequest, "phone "+err.Error())
		return
	}
	code, err := a.Conn.RequestPairCode(r.Context(), number)
	switch {
	case errors.Is(err, supervisor.ErrNotPairing):
		writeError(w, http.StatusConflict, err.Error()+"; the code will be requested on the next pairing connection")
	case err != nil:
		a.Logger.Error("pairing code request failed", "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"pair_code": code, "phone": number})
	}
}

func (a *api) pairQR(w http.ResponseWriter, r *http.Request) {
	p := a.Conn.Pairing()
	if p.QR == "" {
		writeError(w, http.StatusNotFound, "no QR code to show: the bot is paired or not connected to WhatsApp yet")
		return
	}
	code, err := qr.Encode(p.QR, qr.M)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "render QR code: "+err.Error())
		return
	}
	code.Scale = 6
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(code.PNG())
}

var pairPage = template.Must(template.New("pair").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>{{.Bot}}: pair with WhatsApp</title>
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto;text-align:center}</style></head>
<body><h1>{{.Bot}}</h1>
{{if .Pairing.Paired}}<p>Paired as <b>{{.Pairing.Account}}</b>. Connection: <b>{{.State}}</b>.</p>
{{else if .Pairing.QR}}<p>On your phone: WhatsApp &rsaquo; Linked devices &rsaquo; Link a device, then scan:</p>
<img src="pair/qr.png?t={{.Now}}" alt="QR code" width="300" height="300">
{{if .Pairing.Code}}<p>Or choose "Link with phone number" and enter <b>{{.Pairing.Code}}</b></p>{{end}}
{{else}}<p>Waiting for WhatsApp ({{.State}}: {{.Reason}}). This page refreshes itself.</p>{{end}}
</body></html>`))

func (a *api) pairPage(w http.ResponseWriter, r *http.Request) {
	st := a.Conn.Status()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	pairPage.Execute(w, map[string]any{
		"Bot": a.BotName, "Pairing": a.Conn.Pairing(), "State": st.State, "Reason": st.Reason,
		"Now": time.Now().Unix(),
	})
}
