// Package sendcheck tells a sender whether whatsmeow encrypted a message for
// every device it addressed.
//
// whatsmeow encrypts a direct message once per device of the recipient and
// of the account's own phone. When one device's encryption fails (a store
// error, a damaged session or identity, prekeys the server did not give), it
// logs a warning, leaves the device out and sends to the others; SendMessage
// then reports success (send.go encryptMessageForDevices: "TODO return these
// errors if it's a fatal one", still so upstream in 33cfac51). The server
// acks such a message, so a caller that trusts the ack records a message sent
// that no device of the recipient may ever show: after 16 KiB of a bot's
// SQLite file were damaged, 100 of 200 messages were (issue 13).
//
// A Check rides in the context of one send. whatsmeow asks its session store
// for the sessions of every device it is about to encrypt for, in one call
// (store.Device.WithCachedSessions), and writes back the session of every
// device it did encrypt for, in one call (PutCachedSessions): encrypting
// advances the session's ratchet, so a device that got a copy always has a
// changed session. The store decorator (Sessions) reports both calls to the
// Check in their context; a device asked for and not written back was left
// out.
//
// Not every device left out is a failure of ours: a device without a
// session gets one from the prekeys the server hands out, and the server
// gives none for a device that is gone (a stale device list); whatsmeow
// then leaves it out, rightly, and retrying would only make the message dead
// after OUTGOING_MAX_ATTEMPTS. So a device left out fails the send when it had
// a session (its encryption failed), or when a store call of the send
// failed (sessions or identities: a new contact's prekeys cannot be used
// without its identity). This reads whatsmeow's behaviour through its store
// interfaces instead of patching its send path.
package sendcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.mau.fi/whatsmeow/store"
)

// ErrDeviceLeftOut is the failure of a send that was not encrypted for every
// device it was addressed to. It is transient: the next attempt encrypts for
// them again, and devices that got the first copy show a message ID once.
var ErrDeviceLeftOut = errors.New("not encrypted for every device of the chat")

// Check collects what one send asked of and wrote to the session store.
type Check struct {
	mu        sync.Mutex
	addressed map[string]bool // Signal address -> encrypted for
	known     map[string]bool // addressed devices that had a session
	storeErr  error
}

type ctxKey struct{}

// Watch returns a context for one send and the Check that will see it.
func Watch(ctx context.Context) (context.Context, *Check) {
	c := &Check{}
	return context.WithValue(ctx, ctxKey{}, c), c
}

func from(ctx context.Context) *Check {
	c, _ := ctx.Value(ctxKey{}).(*Check)
	return c
}

func (c *Check) address(addrs []string, sessions map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addressed == nil {
		c.addressed = make(map[string]bool, len(addrs))
		c.known = make(map[string]bool, len(addrs))
	}
	for _, a := range addrs {
		if _, ok := c.addressed[a]; !ok {
			c.addressed[a] = false
		}
		if sessions[a] != nil {
			c.known[a] = true
		}
	}
}

func (c *Check) encrypted(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range addrs {
		if _, ok := c.addressed[a]; ok {
			c.addressed[a] = true
		}
	}
}

func (c *Check) failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.storeErr == nil {
		c.storeErr = err
	}
}

// Err reports, after a send that returned no error, whether a device was
// left out that makes the send a failure (see the package comment): nil
// when none was, an error wrapping ErrDeviceLeftOut that names the devices
// (and the first store error of the send, if there was one) otherwise.
func (c *Check) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var left []string
	for a, ok := range c.addressed {
		if !ok && (c.known[a] || c.storeErr != nil) {
			left = append(left, a)
		}
	}
	if len(left) == 0 {
		return nil
	}
	slices.Sort(left)
	err := fmt.Errorf("%w: %d of %d left out (%s)", ErrDeviceLeftOut, len(left), len(c.addressed), strings.Join(left, ", "))
	if c.storeErr != nil {
		err = fmt.Errorf("%w; store: %w", err, c.storeErr)
	}
	return err
}

// Decorate puts the decorators that report to a send's Check over dev's
// session and identity stores (signalcache.Attach calls it above the cache,
// where every call whatsmeow makes is seen, cached or not).
func Decorate(dev *store.Device) {
	dev.Sessions = Sessions(dev.Sessions)
	dev.Identities = &identities{IdentityStore: dev.Identities}
}

type identities struct {
	store.IdentityStore
}

func (s *identities) IsTrustedIdentity(ctx context.Context, addr string, key [32]byte) (bool, error) {
	ok, err := s.IdentityStore.IsTrustedIdentity(ctx, addr, key)
	note(ctx, err)
	return ok, err
}

func (s *identities) PutIdentity(ctx context.Context, addr string, key [32]byte) error {
	err := s.IdentityStore.PutIdentity(ctx, addr, key)
	note(ctx, err)
	return err
}

// Sessions decorates a session store so that the sends watched by a Check
// report to it. It must be the outermost decorator (Decorate): whatsmeow's
// calls must reach it whether or not a cache below answers them.
func Sessions(inner store.SessionStore) store.SessionStore {
	return &sessions{SessionStore: inner}
}

type sessions struct {
	store.SessionStore
}

func (s *sessions) GetManySessions(ctx context.Context, addrs []string) (map[string][]byte, error) {
	got, err := s.SessionStore.GetManySessions(ctx, addrs)
	if c := from(ctx); c != nil {
		c.address(addrs, got)
		if err != nil {
			c.failed(err)
		}
	}
	return got, err
}

func (s *sessions) PutManySessions(ctx context.Context, records map[string][]byte) error {
	err := s.SessionStore.PutManySessions(ctx, records)
	if c := from(ctx); c != nil {
		if err != nil {
			c.failed(err)
		} else {
			addrs := make([]string, 0, len(records))
			for a := range records {
				addrs = append(addrs, a)
			}
			c.encrypted(addrs)
		}
	}
	return err
}

func (s *sessions) GetSession(ctx context.Context, addr string) ([]byte, error) {
	got, err := s.SessionStore.GetSession(ctx, addr)
	note(ctx, err)
	return got, err
}

func (s *sessions) HasSession(ctx context.Context, addr string) (bool, error) {
	ok, err := s.SessionStore.HasSession(ctx, addr)
	note(ctx, err)
	return ok, err
}

func (s *sessions) PutSession(ctx context.Context, addr string, record []byte) error {
	err := s.SessionStore.PutSession(ctx, addr, record)
	if c := from(ctx); c != nil {
		if err != nil {
			c.failed(err)
		} else {
			c.encrypted([]string{addr})
		}
	}
	return err
}

// note records a store error in the send's Check, if the call is part of one.
func note(ctx context.Context, err error) {
	if c := from(ctx); c != nil && err != nil {
		c.failed(err)
	}
}
