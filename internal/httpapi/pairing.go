package httpapi

import (
	"errors"
	"math"
	"net/http"
	"time"

	"rsc.io/qr"

	"github.com/blacksky-bot/blacksky/internal/phone"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// pairBody is GET /api/v1/pair: what is needed to link the bot, and where
// its connection is, which the pairing page polls.
type pairBody struct {
	supervisor.Pairing
	// QRExpiresIn is the current QR code's remaining lifetime in seconds:
	// a countdown on a phone cannot use qr_expires, since the phone's clock
	// and the server's differ.
	QRExpiresIn *float64         `json:"qr_expires_in,omitempty"`
	State       supervisor.State `json:"state"`
	StateText   string           `json:"state_text"`
	Reason      string           `json:"reason,omitempty"`
}

func (a *api) pairState() pairBody {
	p, st := a.Conn.Pairing(), a.Conn.Status()
	text, _ := stateText(st)
	b := pairBody{Pairing: p, State: st.State, StateText: text, Reason: st.Reason}
	if p.QR != "" && !p.QRExpires.IsZero() {
		left := math.Round(max(time.Until(p.QRExpires).Seconds(), 0)*10) / 10
		b.QRExpiresIn = &left
	}
	return b
}

func (a *api) pairJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.pairState())
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
