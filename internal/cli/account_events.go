package cli

import (
	"context"

	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// reportAccount sends the account's connection state and pairing to the
// webhook as account.* events: it hooks opts (keeping hooks already set),
// so every supervisor built from them reports, and stores the events from
// a goroutine of its own until ctx ends, so a slow database never holds the
// connection up (webhook.AccountEvents). Without a webhook it does nothing.
// The events go out with the webhook's deliveries, from the process holding
// the account; ones made by blacksky pair wait for blacksky run.
func reportAccount(ctx context.Context, opts *supervisor.Options, wh *webhook.Client) {
	if wh == nil {
		return
	}
	events := wh.AccountEvents(0)
	onState, onPairing := opts.OnState, opts.OnPairing
	opts.OnState = func(s supervisor.Status) {
		if onState != nil {
			onState(s)
		}
		events.State(accountState(s))
	}
	opts.OnPairing = func(p supervisor.Pairing) {
		if onPairing != nil {
			onPairing(p)
		}
		events.Pairing(accountPairing(p))
	}
	go events.Run(ctx)
}

func accountState(s supervisor.Status) webhook.AccountState {
	return webhook.AccountState{State: string(s.State), Reason: s.Reason, Degraded: s.Degraded, Account: s.Account, Time: s.Since}
}

func accountPairing(p supervisor.Pairing) webhook.AccountPairing {
	return webhook.AccountPairing{Paired: p.Paired, Account: p.Account, QR: p.QR, QRExpires: p.QRExpires, Code: p.Code, CodePhone: p.CodePhone}
}
