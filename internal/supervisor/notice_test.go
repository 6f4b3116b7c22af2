package supervisor

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

// The outage notice names what failed, not whatsmeow's layers around it.
func TestShortCauseOfADialError(t *testing.T) {
	wrap := func(err error) error {
		return fmt.Errorf("failed to dial whatsapp web websocket: failed to WebSocket dial: %w", err)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{wrap(&net.DNSError{Err: "no such host", Name: "web.whatsapp.com", Server: "10.255.255.53:53", IsNotFound: true}),
			"lookup web.whatsapp.com: no such host"},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "dial tcp: connection refused"},
		{errors.New("websocket: bad handshake (503)"), "websocket: bad handshake (503)"},
	} {
		if got := shortCause(c.err); got != c.want {
			t.Errorf("shortCause(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}
