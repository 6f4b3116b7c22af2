package supervisor_test

import (
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
	. "github.com/blacksky-bot/blacksky/internal/supervisor"
)

// OnPairing sees every change of the pairing, in order, and what it is
// given is the supervisor's pairing at that moment: the hook runs outside
// the lock (it may read the supervisor) and before the next change.
func TestPairingHookSeesEachChangeInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []Pairing
	var sup func() *Supervisor
	h := newHarness(t, func(o *Options) {
		o.OnPairing = func(p Pairing) {
			if now := sup().Pairing(); now != p {
				t.Errorf("OnPairing got %+v while the supervisor's pairing is %+v", p, now)
			}
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
		}
	})
	sup = func() *Supervisor { return h.sup }
	h.pair()
	mark := h.mark()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDeviceRemoved}); err != nil {
		t.Fatal(err)
	}
	h.waitStates(mark, LoggedOut, Unpaired)
	if err := h.sup.WaitFor(h.ctx(15*time.Second), func(_ Status, p Pairing) bool { return p.QR != "" && !p.Paired }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first QR code, paired, unpaired by the logout, a new QR code.
	steps := []func(Pairing) bool{
		func(p Pairing) bool { return p.QR != "" && !p.Paired },
		func(p Pairing) bool { return p.Paired && p.Account != "" && p.QR == "" },
		func(p Pairing) bool { return !p.Paired && p.Account == "" && p.QR == "" },
		func(p Pairing) bool { return p.QR != "" && !p.Paired },
	}
	i := 0
	for _, p := range got {
		if i < len(steps) && steps[i](p) {
			i++
		}
	}
	if i < len(steps) {
		t.Errorf("OnPairing saw %+v; stuck before step %d", got, i+1)
	}
}
