package supervisor

import "testing"

func TestStatusReady(t *testing.T) {
	const jid = "4915123456789:12@s.whatsapp.net"
	tests := []struct {
		state      State
		account    string
		wantReady  bool
		wantReason string
	}{
		{Connected, jid, true, ""},
		{Unpaired, "", false, "not paired"},
		{LoggedOut, "", false, "not paired"},
		{LoggedOut, jid, false, "not paired"}, // a logged-out account must pair again
		{Connecting, "", false, "not paired"},
		{Connecting, jid, false, "connecting"},
		{Reconnecting, "", false, "not paired"},
		{Reconnecting, jid, false, "connecting"},
		{Banned, jid, false, "banned"},
		{Outdated, jid, false, "outdated"},
		{Replaced, jid, false, "replaced"},
		{Stopped, jid, false, "stopped"},
	}
	for _, tt := range tests {
		ready, reason := Status{State: tt.state, Account: tt.account, Reason: "ignored detail"}.Ready()
		if ready != tt.wantReady || reason != tt.wantReason {
			t.Errorf("Status{State: %q, Account: %q}.Ready() = %v, %q; want %v, %q",
				tt.state, tt.account, ready, reason, tt.wantReady, tt.wantReason)
		}
	}
}

// Every state but Connected must give a reason, so /readyz never answers 503
// without saying why.
func TestOnlyConnectedIsReady(t *testing.T) {
	for _, st := range AllStates {
		for _, account := range []string{"", "4915123456789:12@s.whatsapp.net"} {
			ready, reason := Status{State: st, Account: account}.Ready()
			if ready != (st == Connected) {
				t.Errorf("%s (account %q): ready = %v", st, account, ready)
			}
			if !ready && reason == "" {
				t.Errorf("%s (account %q): not ready without a reason", st, account)
			}
		}
	}
}
