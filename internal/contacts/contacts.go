// Package contacts answers who a recipient is on WhatsApp: its phone
// number, its LID (the second user ID WhatsApp moved users to in 2025-26),
// and whether it has an account at all.
//
// A Directory asks WhatsApp once per recipient and remembers: what whatsmeow
// learnt of LIDs (its LID map, filled from usync answers, incoming messages
// and notifications, kept in memory by whatsmeow) answers without a round
// trip, and the directory caches what the map cannot hold, numbers with no
// account and accounts with no LID, for an hour. So a send to a known
// recipient costs no lookup, and a number that is not on WhatsApp is asked
// about once an hour however many messages are queued for it.
//
// Failure model: a lookup that cannot reach WhatsApp returns an error and
// caches nothing; only WhatsApp's answer is remembered.
package contacts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
)

// Contact is what is known of a recipient.
type Contact struct {
	// Phone is the phone-number JID; empty when only the LID is known.
	Phone types.JID
	// LID is the LID JID; empty when WhatsApp gave none (or not yet).
	LID types.JID
	// OnWhatsApp is false only when WhatsApp said the number has no account.
	OnWhatsApp bool
}

// ErrNotUser is returned for a JID that names no single user (a group, a
// broadcast list, a device).
var ErrNotUser = errors.New("not a phone number or a LID of a WhatsApp user")

// Client is the part of whatsmeow a Directory uses.
type Client interface {
	IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error)
	LIDForPN(ctx context.Context, pn types.JID) (types.JID, error)
	PNForLID(ctx context.Context, lid types.JID) (types.JID, error)
}

// Whatsmeow adapts a whatsmeow client to Client.
type Whatsmeow struct{ *whatsmeow.Client }

// FromWhatsmeow adapts a function returning the current whatsmeow client,
// or nil while there is none, for New.
func FromWhatsmeow(client func() *whatsmeow.Client) func() Client {
	return func() Client {
		if cli := client(); cli != nil {
			return Whatsmeow{cli}
		}
		return nil
	}
}

// LIDForPN reads whatsmeow's LID map.
func (w Whatsmeow) LIDForPN(ctx context.Context, pn types.JID) (types.JID, error) {
	return w.Store.LIDs.GetLIDForPN(ctx, pn)
}

// PNForLID reads whatsmeow's LID map.
func (w Whatsmeow) PNForLID(ctx context.Context, lid types.JID) (types.JID, error) {
	return w.Store.LIDs.GetPNForLID(ctx, lid)
}

// cacheTTL is how long an answer the LID map cannot hold is trusted: a
// number may get an account, an account its LID.
const cacheTTL = time.Hour

// cacheSize bounds the remembered answers; the oldest go first.
const cacheSize = 10000

// Directory looks recipients up. The zero value is not usable: use New.
type Directory struct {
	client func() Client
	now    func() time.Time

	mu    sync.Mutex
	cache *simplelru.LRU[types.JID, cached] // by phone JID
	asked int                               // round trips to WhatsApp, for tests and metrics
}

type cached struct {
	c       Contact
	expires time.Time
}

// New returns a directory that asks through client, which may return nil
// while there is no connected client.
func New(client func() Client) *Directory {
	cache, _ := simplelru.NewLRU[types.JID, cached](cacheSize, nil) // fails only for size < 1
	return &Directory{client: client, now: time.Now, cache: cache}
}

// ErrNoClient is returned when a lookup needs WhatsApp and there is no
// client, or it is not connected.
var ErrNoClient = errors.New("not connected to WhatsApp")

// Lookup returns what is known of jid, a phone-number or LID JID (device
// parts are ignored), asking WhatsApp about a phone number whose answer is
// neither in whatsmeow's LID map nor cached.
func (d *Directory) Lookup(ctx context.Context, jid types.JID) (Contact, error) {
	jid = jid.ToNonAD()
	cli := d.client()
	switch jid.Server {
	case types.HiddenUserServer:
		// Only WhatsApp users have a LID.
		out := Contact{LID: jid, OnWhatsApp: true}
		if cli != nil {
			pn, err := cli.PNForLID(ctx, jid)
			if err != nil {
				return Contact{}, fmt.Errorf("look up the phone number of %s: %w", jid, err)
			}
			out.Phone = pn
		}
		return out, nil
	case types.DefaultUserServer:
		return d.lookupPhone(ctx, cli, jid)
	}
	return Contact{}, fmt.Errorf("look up %s: %w", jid, ErrNotUser)
}

func (d *Directory) lookupPhone(ctx context.Context, cli Client, pn types.JID) (Contact, error) {
	if cli == nil {
		return Contact{}, fmt.Errorf("look up %s: %w", pn, ErrNoClient)
	}
	lid, err := cli.LIDForPN(ctx, pn)
	if err != nil {
		return Contact{}, fmt.Errorf("look up the LID of %s: %w", pn, err)
	}
	if !lid.IsEmpty() {
		return Contact{Phone: pn, LID: lid, OnWhatsApp: true}, nil
	}
	if c, ok := d.cached(pn); ok {
		return c, nil
	}
	d.mu.Lock()
	d.asked++
	d.mu.Unlock()
	resp, err := cli.IsOnWhatsApp(ctx, []string{"+" + pn.User})
	if errors.Is(err, whatsmeow.ErrNotConnected) || errors.Is(err, whatsmeow.ErrIQDisconnected) {
		err = fmt.Errorf("%w: %w", ErrNoClient, err)
	}
	if err != nil {
		return Contact{}, fmt.Errorf("ask WhatsApp whether %s has an account: %w", pn.User, err)
	}
	out := Contact{Phone: pn}
	for _, r := range resp {
		if strings.TrimPrefix(r.Query, "+") != pn.User && r.PhoneNumber.User != pn.User && r.JID.User != pn.User {
			continue
		}
		out.OnWhatsApp = r.IsIn
		if r.JID.Server == types.HiddenUserServer {
			out.LID = r.JID.ToNonAD()
		}
	}
	if out.LID.IsEmpty() {
		d.remember(pn, out)
	}
	return out, nil
}

func (d *Directory) cached(pn types.JID) (Contact, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.cache.Get(pn)
	if !ok || !d.now().Before(e.expires) {
		return Contact{}, false
	}
	return e.c, true
}

func (d *Directory) remember(pn types.JID, c Contact) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cache.Add(pn, cached{c: c, expires: d.now().Add(cacheTTL)})
}

// Asked returns how many times the directory asked WhatsApp.
func (d *Directory) Asked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked
}
