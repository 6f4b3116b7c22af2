package sendcheck

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/store"
)

// memSessions is the part of a session store a send uses; every device
// but those in fresh has a session.
type memSessions struct {
	store.SessionStore
	getErr error
	fresh  map[string]bool
}

func (m *memSessions) GetManySessions(_ context.Context, addrs []string) (map[string][]byte, error) {
	if m.getErr != nil {
		return nil, m.getErr
	}
	out := make(map[string][]byte, len(addrs))
	for _, a := range addrs {
		out[a] = nil
		if !m.fresh[a] {
			out[a] = []byte("session")
		}
	}
	return out, nil
}

type failingIdentities struct {
	store.IdentityStore
	err error
}

func (f failingIdentities) IsTrustedIdentity(context.Context, string, [32]byte) (bool, error) {
	return false, f.err
}

func (m *memSessions) GetSession(context.Context, string) ([]byte, error) { return nil, m.getErr }

func (m *memSessions) PutManySessions(context.Context, map[string][]byte) error { return nil }

func (m *memSessions) PutSession(context.Context, string, []byte) error { return nil }

// send does what whatsmeow does for one message: ask for the sessions of
// every device, then write back those it encrypted for.
func send(ctx context.Context, s store.SessionStore, devices, encrypted []string) {
	s.GetManySessions(ctx, devices)
	put := map[string][]byte{}
	for _, d := range encrypted {
		put[d] = []byte("session")
	}
	s.PutManySessions(ctx, put)
}

func TestCheck(t *testing.T) {
	s := Sessions(&memSessions{})
	devices := []string{"contact_1:0", "phone_1:0"}

	ctx, c := Watch(context.Background())
	send(ctx, s, devices, devices)
	if err := c.Err(); err != nil {
		t.Errorf("every device encrypted for: %v", err)
	}

	ctx, c = Watch(context.Background())
	send(ctx, s, devices, devices[1:])
	err := c.Err()
	if !errors.Is(err, ErrDeviceLeftOut) || !strings.Contains(err.Error(), "contact_1:0") || strings.Contains(err.Error(), "phone_1:0") {
		t.Errorf("contact left out: %v; want ErrDeviceLeftOut naming only contact_1:0", err)
	}

	// A session written one at a time (no prefetch cache) counts too.
	ctx, c = Watch(context.Background())
	s.GetManySessions(ctx, devices)
	for _, d := range devices {
		s.PutSession(ctx, d, []byte("session"))
	}
	if err := c.Err(); err != nil {
		t.Errorf("sessions written singly: %v", err)
	}

	// Sends that are not watched, and writes for devices nobody asked
	// about (a retry receipt answered meanwhile), change nothing.
	send(context.Background(), s, devices, nil)
	ctx, c = Watch(context.Background())
	send(ctx, s, devices[:1], devices)
	if err := c.Err(); err != nil {
		t.Errorf("extra write: %v", err)
	}
}

// A device without a session whose prekeys the server did not give (it is
// gone) is left out rightly: no failure, or the message would only go dead.
// With a store error in the send, it is a failure.
func TestNewDeviceLeftOut(t *testing.T) {
	inner := &memSessions{fresh: map[string]bool{"gone_1:0": true}}
	dev := &store.Device{Sessions: inner, Identities: failingIdentities{}}
	Decorate(dev)
	devices := []string{"contact_1:0", "gone_1:0"}
	ctx, c := Watch(context.Background())
	send(ctx, dev.Sessions, devices, devices[:1])
	if err := c.Err(); err != nil {
		t.Errorf("a device the server gave no prekeys for: %v; want no failure", err)
	}

	boom := errors.New("no such table: whatsmeow_identity_keys")
	dev = &store.Device{Sessions: inner, Identities: failingIdentities{err: boom}}
	Decorate(dev)
	ctx, c = Watch(context.Background())
	dev.Sessions.GetManySessions(ctx, devices)
	dev.Identities.IsTrustedIdentity(ctx, "gone_1:0", [32]byte{})
	dev.Sessions.PutManySessions(ctx, map[string][]byte{"contact_1:0": []byte("s")})
	if err := c.Err(); !errors.Is(err, ErrDeviceLeftOut) || !errors.Is(err, boom) || !strings.Contains(err.Error(), "gone_1:0") {
		t.Errorf("new device left out after an identity store error: %v; want a failure naming it", err)
	}
}

func TestCheckNamesTheStoreError(t *testing.T) {
	boom := errors.New("database disk image is malformed")
	inner := &memSessions{}
	s := Sessions(inner)
	ctx, c := Watch(context.Background())
	s.GetManySessions(ctx, []string{"contact_1:0"})
	inner.getErr = boom
	s.GetSession(ctx, "contact_1:0")
	if err := c.Err(); !errors.Is(err, ErrDeviceLeftOut) || !errors.Is(err, boom) {
		t.Errorf("Err = %v; want the device left out and the store error", err)
	}
}
