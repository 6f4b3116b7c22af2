package sandbox

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// With Latency, a send is acked a round trip after it left, and sends made
// at once are not acked one round trip behind another: the delay is the
// network's, not a queue of the server's.
func TestLatencyDelaysAcksWithoutSerialising(t *testing.T) {
	t.Parallel()
	const rtt = 500 * time.Millisecond
	s := startServer(t, Options{Latency: rtt})
	b := pairQR(t, s)
	ctx := testCtx(t, 60*time.Second)
	alice, err := s.AddContact("+4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("warm up")); err != nil {
		t.Fatal(err)
	}
	const n = 5
	start := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			sent := time.Now()
			_, errs[i] = b.cli.SendMessage(ctx, alice.JID(), textMsg(fmt.Sprint("message ", i)))
			took[i] = time.Since(sent)
		})
	}
	wg.Wait()
	all := time.Since(start)
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if took[i] < rtt {
			t.Errorf("message %d acked after %v, less than the round trip %v", i, took[i], rtt)
		}
	}
	// Serialised, five sends would take five round trips (2.5 s); pipelined
	// they take one plus the work, far below three.
	if all >= 3*rtt {
		t.Errorf("%d concurrent sends took %v: acked one round trip behind another (rtt %v)", n, all, rtt)
	}
}
