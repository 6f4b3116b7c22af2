// Package signalcache keeps what whatsmeow reads from its store on every send
// (the Signal sessions and identity keys of the chat's devices, the
// contact's privacy token and the account's NCT salt) in memory, in front of
// whatsmeow's SQL store, and skips identity writes that would store the key
// already stored.
//
// Every write still goes to the database first and enters the cache only once
// it succeeded, so a crash loses nothing the store would have kept. A read is
// served from memory, so the cache is right only while this process is the
// only writer of the account's rows. The account lease guarantees that
// (internal/lease): a Device must not be used after the lease it was loaded
// under is lost.
package signalcache

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
)

// Bounds on what is kept, so that memory stays flat however many contacts a
// bot has. A session record is a few kilobytes; these hold the devices of the
// chats a bot is busy with, and a miss costs one database read.
const (
	maxSessions   = 1024
	maxIdentities = 4096
	maxTokens     = 4096
)

// Attach makes dev's identity, session and privacy-token stores read through
// a cache. An unpaired dev gets the cache when pairing first saves it, which
// is when whatsmeow creates its stores. Each time, under, if not nil,
// decorates whatsmeow's session store beneath the cache (the store package
// writes a send's sessions in one statement through it), and over, if not
// nil, decorates the device's stores above it, where it sees every call
// whatsmeow makes (internal/sendcheck).
func Attach(dev *store.Device, under func(store.SessionStore) store.SessionStore, over func(*store.Device)) {
	c := &container{DeviceContainer: dev.Container, dev: dev, under: under, over: over}
	dev.Container = c
	if dev.Initialized {
		c.wrap()
	}
}

// container notices when whatsmeow creates or deletes the device's stores.
type container struct {
	store.DeviceContainer
	dev   *store.Device
	under func(store.SessionStore) store.SessionStore
	over  func(*store.Device)
	cache *cache // the cache of the stores wrapped last; nil before
}

func (c *container) PutDevice(ctx context.Context, dev *store.Device) error {
	err := c.DeviceContainer.PutDevice(ctx, dev)
	if dev == c.dev && dev.Initialized {
		c.wrap()
	}
	return err
}

// wrap decorates the device's stores, unless they are decorated already.
func (c *container) wrap() {
	if c.cache != nil && c.cache.owns(c.dev) {
		return
	}
	if c.under != nil {
		c.dev.Sessions = c.under(c.dev.Sessions)
	}
	c.cache = wrap(c.dev)
	if c.over != nil {
		c.over(c.dev)
	}
}

func (c *container) DeleteDevice(ctx context.Context, dev *store.Device) error {
	err := c.DeviceContainer.DeleteDevice(ctx, dev)
	if dev == c.dev && c.cache != nil {
		c.cache.purge()
	}
	return err
}

// wrap puts one new cache in front of dev's stores.
func wrap(dev *store.Device) *cache {
	c := newCache()
	dev.Sessions = &sessions{SessionStore: dev.Sessions, c: c}
	dev.Identities = &identities{IdentityStore: dev.Identities, c: c}
	dev.PrivacyTokens = &tokens{PrivacyTokenStore: dev.PrivacyTokens, c: c}
	dev.LIDs = &lids{LIDStore: dev.LIDs, c: c}
	dev.EventBuffer = &eventBuffer{EventBuffer: dev.EventBuffer, c: c}
	dev.NCTSalt = &nctSalt{NCTSaltStore: dev.NCTSalt, c: c}
	return c
}

// owns tells whether dev's stores are still the ones c was put in front of
// (whatsmeow replaces them all when it initializes a device again).
func (c *cache) owns(dev *store.Device) bool {
	id, ok := dev.Identities.(*identities)
	return ok && id.c == c
}

// cache holds the values last read from or written to the database.
//
// A read from the database may race a write of the same row: the read can
// return the old value after the write has begun. The epoch makes that safe
// without holding the lock across database calls (which could deadlock with
// a transaction that writes through the cache): every write moves the epoch
// before and after it runs, and a read fills the cache only if the epoch did
// not move while it ran.
type cache struct {
	mu         sync.Mutex
	epoch      uint64
	sessions   *simplelru.LRU[string, []byte] // nil: no session stored
	identities *simplelru.LRU[string, [32]byte]
	tokens     *simplelru.LRU[types.JID, *store.PrivacyToken] // nil: no token stored
	migrated   map[string]bool                                // phone-number users moved to their LID
	salt       *[]byte                                        // the NCT salt; nil: not read yet
}

func newCache() *cache {
	c := &cache{migrated: map[string]bool{}}
	// NewLRU fails only for a size below 1.
	c.sessions, _ = simplelru.NewLRU[string, []byte](maxSessions, nil)
	c.identities, _ = simplelru.NewLRU[string, [32]byte](maxIdentities, nil)
	c.tokens, _ = simplelru.NewLRU[types.JID, *store.PrivacyToken](maxTokens, nil)
	return c
}

// now returns the epoch a database read starts in.
func (c *cache) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// fill runs add if nothing was written since epoch e.
func (c *cache) fill(e uint64, add func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch == e {
		add()
	}
}

// update runs a database write. What drop removes leaves the cache before
// the write and again after it, since a read during the write may have put
// the old value back; set adds the new values if the write succeeded and no
// other write ran meanwhile.
func (c *cache) update(drop func(), write func() error, set func()) error {
	c.mu.Lock()
	c.epoch++
	e := c.epoch
	drop()
	c.mu.Unlock()

	err := write()

	c.mu.Lock()
	defer c.mu.Unlock()
	drop()
	if err == nil && set != nil && c.epoch == e {
		set()
	}
	c.epoch++
	return err
}

// purge forgets everything, for when the database may hold other values
// than the cache: a rolled-back transaction, a deleted device.
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.sessions.Purge()
	c.identities.Purge()
	c.tokens.Purge()
	clear(c.migrated)
	c.salt = nil
}

// dropDevices removes the sessions and identities of every device of the
// Signal address users given ("4915112345678", "123456_1"); c.mu must be held.
func (c *cache) dropDevices(users ...string) {
	owned := func(addr string) bool {
		for _, u := range users {
			if strings.HasPrefix(addr, u+":") {
				return true
			}
		}
		return false
	}
	for _, addr := range c.sessions.Keys() {
		if owned(addr) {
			c.sessions.Remove(addr)
		}
	}
	for _, addr := range c.identities.Keys() {
		if owned(addr) {
			c.identities.Remove(addr)
		}
	}
}

// sessions caches whole session records; whatsmeow reads them before every
// encryption and decryption.
type sessions struct {
	store.SessionStore
	c *cache
}

func (s *sessions) GetSession(ctx context.Context, addr string) ([]byte, error) {
	got, err := s.GetManySessions(ctx, []string{addr})
	return got[addr], err
}

func (s *sessions) HasSession(ctx context.Context, addr string) (bool, error) {
	got, err := s.GetSession(ctx, addr)
	return got != nil, err
}

func (s *sessions) GetManySessions(ctx context.Context, addrs []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(addrs))
	var missing []string
	s.c.mu.Lock()
	e := s.c.epoch
	for _, addr := range addrs {
		if v, ok := s.c.sessions.Get(addr); ok {
			out[addr] = v
		} else {
			missing = append(missing, addr)
		}
	}
	s.c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := s.SessionStore.GetManySessions(ctx, missing)
	if err != nil {
		return nil, err
	}
	s.c.fill(e, func() {
		for _, addr := range missing {
			s.c.sessions.Add(addr, got[addr])
		}
	})
	for _, addr := range missing {
		out[addr] = got[addr]
	}
	return out, nil
}

func (s *sessions) PutSession(ctx context.Context, addr string, record []byte) error {
	return s.put(map[string][]byte{addr: record}, func() error {
		return s.SessionStore.PutSession(ctx, addr, record)
	})
}

func (s *sessions) PutManySessions(ctx context.Context, records map[string][]byte) error {
	return s.put(records, func() error {
		return s.SessionStore.PutManySessions(ctx, records)
	})
}

// put stores records with write, keeping the cache in step with it.
func (s *sessions) put(records map[string][]byte, write func() error) error {
	return s.c.update(func() {
		for addr := range records {
			s.c.sessions.Remove(addr)
		}
	}, write, func() {
		for addr, rec := range records {
			s.c.sessions.Add(addr, rec)
		}
	})
}

func (s *sessions) DeleteSession(ctx context.Context, addr string) error {
	return s.c.update(func() { s.c.sessions.Remove(addr) }, func() error {
		return s.SessionStore.DeleteSession(ctx, addr)
	}, nil)
}

// DeleteAllSessions deletes the sessions of every device of user, under
// its LID addresses too (usersOf).
func (s *sessions) DeleteAllSessions(ctx context.Context, user string) error {
	users := usersOf(user)
	return s.c.update(func() { s.c.dropDevices(users...) }, func() error {
		for _, u := range users {
			if err := s.SessionStore.DeleteAllSessions(ctx, u); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// usersOf is the Signal address users whatsmeow's DeleteAll* calls mean.
// whatsmeow passes a JID's user ("9911"), and its SQL store deletes the
// addresses "9911:<device>"; but a LID's Signal addresses carry the LID
// agent, "9911_1:<device>" (types.JID.SignalAddressUser), so an identity
// change notified from a LID, as WhatsApp sends them, deleted nothing, and
// the next message went out in the old session to an install that no
// longer has it (the sandbox's reinstall showed it: the recipient could not
// decrypt it and asked for it again). Deleting both forms is what the call
// means; a phone number has no "_1" addresses, so it costs one empty delete.
func usersOf(user string) []string {
	if strings.Contains(user, "_") {
		return []string{user}
	}
	return []string{user, user + "_1"}
}

// MigratePNToLID moves a contact's sessions, identities and sender keys from
// its phone-number address to its LID. whatsmeow calls it before every send
// to a contact whose LID it knows; the store moves the rows the first time only.
func (s *sessions) MigratePNToLID(ctx context.Context, pn, lid types.JID) error {
	user := pn.SignalAddressUser()
	s.c.mu.Lock()
	done := s.c.migrated[user]
	s.c.mu.Unlock()
	if done {
		return s.SessionStore.MigratePNToLID(ctx, pn, lid)
	}
	return s.c.update(func() { s.c.dropDevices(user, lid.SignalAddressUser()) }, func() error {
		return s.SessionStore.MigratePNToLID(ctx, pn, lid)
	}, func() { s.c.migrated[user] = true })
}

// identities caches identity keys known to be stored. A key is only learnt
// from a successful write: the store's IsTrustedIdentity does not say which
// key it holds.
type identities struct {
	store.IdentityStore
	c *cache
}

func (s *identities) IsTrustedIdentity(ctx context.Context, addr string, key [32]byte) (bool, error) {
	s.c.mu.Lock()
	stored, ok := s.c.identities.Get(addr)
	s.c.mu.Unlock()
	if ok {
		return stored == key, nil
	}
	return s.IdentityStore.IsTrustedIdentity(ctx, addr, key)
}

// PutIdentity skips the write when the key is stored already: libsignal
// saves the identity after every encryption, and it rarely changes.
func (s *identities) PutIdentity(ctx context.Context, addr string, key [32]byte) error {
	s.c.mu.Lock()
	stored, ok := s.c.identities.Get(addr)
	s.c.mu.Unlock()
	if ok && stored == key {
		return nil
	}
	return s.c.update(func() { s.c.identities.Remove(addr) }, func() error {
		return s.IdentityStore.PutIdentity(ctx, addr, key)
	}, func() { s.c.identities.Add(addr, key) })
}

func (s *identities) DeleteIdentity(ctx context.Context, addr string) error {
	return s.c.update(func() { s.c.identities.Remove(addr) }, func() error {
		return s.IdentityStore.DeleteIdentity(ctx, addr)
	}, nil)
}

// DeleteAllIdentities forgets the identity keys of every device of user,
// under its LID addresses too (usersOf).
func (s *identities) DeleteAllIdentities(ctx context.Context, user string) error {
	users := usersOf(user)
	return s.c.update(func() { s.c.dropDevices(users...) }, func() error {
		for _, u := range users {
			if err := s.IdentityStore.DeleteAllIdentities(ctx, u); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// tokens caches privacy tokens by user, absent ones too: whatsmeow looks one
// up for every message it sends.
type tokens struct {
	store.PrivacyTokenStore
	c *cache
}

func (s *tokens) GetPrivacyToken(ctx context.Context, user types.JID) (*store.PrivacyToken, error) {
	key := user.ToNonAD()
	s.c.mu.Lock()
	e := s.c.epoch
	tok, ok := s.c.tokens.Get(key)
	s.c.mu.Unlock()
	if !ok {
		var err error
		if tok, err = s.PrivacyTokenStore.GetPrivacyToken(ctx, user); err != nil {
			return nil, err
		}
		s.c.fill(e, func() { s.c.tokens.Add(key, tok) })
	}
	if tok == nil {
		return nil, nil
	}
	cp := *tok
	return &cp, nil
}

// PutPrivacyTokens forgets every cached token: the store answers a lookup
// for a user with the newest token of its phone number or LID, and which
// one that is depends on the rows written.
func (s *tokens) PutPrivacyTokens(ctx context.Context, toks ...store.PrivacyToken) error {
	return s.c.update(s.c.tokens.Purge, func() error {
		return s.PrivacyTokenStore.PutPrivacyTokens(ctx, toks...)
	}, nil)
}

// DeleteExpiredPrivacyTokens forgets every cached token: whatsmeow prunes
// tokens older than a cutoff, and which cached ones those were is not known.
func (s *tokens) DeleteExpiredPrivacyTokens(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.c.update(s.c.tokens.Purge, func() (err error) {
		n, err = s.PrivacyTokenStore.DeleteExpiredPrivacyTokens(ctx, cutoff)
		return err
	}, nil)
	return n, err
}

// lids forgets the cached privacy tokens when a LID mapping is written,
// since token lookups follow the mapping.
type lids struct {
	store.LIDStore
	c *cache
}

func (s *lids) PutLIDMapping(ctx context.Context, lid, pn types.JID) error {
	return s.c.update(s.c.tokens.Purge, func() error {
		return s.LIDStore.PutLIDMapping(ctx, lid, pn)
	}, nil)
}

func (s *lids) PutManyLIDMappings(ctx context.Context, mappings []store.LIDMapping) error {
	return s.c.update(s.c.tokens.Purge, func() error {
		return s.LIDStore.PutManyLIDMappings(ctx, mappings)
	}, nil)
}

// nctSalt caches the account's NCT salt: whatsmeow reads it for every
// message it sends without a privacy token (cstoken.go generateCsToken, the
// cstoken against the reach-out lock), which was a database round trip
// inside the send lock per message.
type nctSalt struct {
	store.NCTSaltStore
	c *cache
}

func (s *nctSalt) GetNCTSalt(ctx context.Context) ([]byte, error) {
	s.c.mu.Lock()
	e, cached := s.c.epoch, s.c.salt
	s.c.mu.Unlock()
	if cached != nil {
		return *cached, nil
	}
	salt, err := s.NCTSaltStore.GetNCTSalt(ctx)
	if err != nil {
		return nil, err
	}
	s.c.fill(e, func() { s.c.salt = &salt })
	return salt, nil
}

func (s *nctSalt) PutNCTSalt(ctx context.Context, salt []byte) error {
	return s.c.update(func() { s.c.salt = nil }, func() error {
		return s.NCTSaltStore.PutNCTSalt(ctx, salt)
	}, func() {
		cp := bytes.Clone(salt)
		s.c.salt = &cp
	})
}

func (s *nctSalt) DeleteNCTSalt(ctx context.Context) error {
	return s.c.update(func() { s.c.salt = nil }, func() error {
		return s.NCTSaltStore.DeleteNCTSalt(ctx)
	}, nil)
}

// eventBuffer forgets everything when a decryption transaction fails: it
// rolled back writes that already reached the cache.
type eventBuffer struct {
	store.EventBuffer
	c *cache
}

func (s *eventBuffer) DoDecryptionTxn(ctx context.Context, fn func(context.Context) error) error {
	err := s.EventBuffer.DoDecryptionTxn(ctx, fn)
	if err != nil {
		s.c.purge()
	}
	return err
}
