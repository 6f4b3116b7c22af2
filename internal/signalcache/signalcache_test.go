package signalcache

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
)

// fakeDB stands in for whatsmeow's SQL store: it counts the reads and writes
// that reach it. Methods the cache does not use are left to the embedded nil
// interfaces and would panic.
type fakeDB struct {
	store.SessionStore
	store.IdentityStore
	store.PrivacyTokenStore
	store.LIDStore
	store.EventBuffer
	store.NCTSaltStore
	store.DeviceContainer

	sessions   map[string][]byte
	identities map[string][32]byte
	tokens     map[types.JID]store.PrivacyToken
	salt       []byte
	reads      int
	writes     int
	failWrites error
	duringRead func() // runs inside the next session read, once
	duringPut  func() // runs inside the next session write or delete, once
}

func newFakeDB() *fakeDB {
	return &fakeDB{sessions: map[string][]byte{}, identities: map[string][32]byte{}, tokens: map[types.JID]store.PrivacyToken{}}
}

func once(f *func()) {
	if g := *f; g != nil {
		*f = nil
		g()
	}
}

func (f *fakeDB) GetManySessions(_ context.Context, addrs []string) (map[string][]byte, error) {
	f.reads++
	out := map[string][]byte{}
	for _, a := range addrs {
		out[a] = f.sessions[a]
	}
	once(&f.duringRead)
	return out, nil
}

func (f *fakeDB) write() error {
	f.writes++
	return f.failWrites
}

func (f *fakeDB) PutSession(ctx context.Context, addr string, rec []byte) error {
	return f.PutManySessions(ctx, map[string][]byte{addr: rec})
}

func (f *fakeDB) PutManySessions(_ context.Context, recs map[string][]byte) error {
	once(&f.duringPut)
	if err := f.write(); err != nil {
		return err
	}
	maps.Copy(f.sessions, recs)
	return nil
}

func (f *fakeDB) DeleteSession(_ context.Context, addr string) error {
	delete(f.sessions, addr)
	return f.write()
}

func (f *fakeDB) DeleteAllSessions(_ context.Context, phone string) error {
	once(&f.duringPut)
	for a := range f.sessions {
		if strings.HasPrefix(a, phone+":") {
			delete(f.sessions, a)
		}
	}
	return f.write()
}

func (f *fakeDB) MigratePNToLID(_ context.Context, pn, lid types.JID) error {
	for a, s := range f.sessions {
		if dev, ok := strings.CutPrefix(a, pn.SignalAddressUser()+":"); ok {
			f.sessions[lid.SignalAddressUser()+":"+dev] = s
			delete(f.sessions, a)
		}
	}
	return f.write()
}

func (f *fakeDB) IsTrustedIdentity(_ context.Context, addr string, key [32]byte) (bool, error) {
	f.reads++
	stored, ok := f.identities[addr]
	return !ok || stored == key, nil
}

func (f *fakeDB) PutIdentity(_ context.Context, addr string, key [32]byte) error {
	if err := f.write(); err != nil {
		return err
	}
	f.identities[addr] = key
	return nil
}

// DeleteAllIdentities deletes as whatsmeow's SQL store does: "user:%".
func (f *fakeDB) DeleteAllIdentities(_ context.Context, user string) error {
	if err := f.write(); err != nil {
		return err
	}
	for a := range f.identities {
		if strings.HasPrefix(a, user+":") {
			delete(f.identities, a)
		}
	}
	return nil
}

func (f *fakeDB) GetPrivacyToken(_ context.Context, user types.JID) (*store.PrivacyToken, error) {
	f.reads++
	if t, ok := f.tokens[user.ToNonAD()]; ok {
		return &t, nil
	}
	return nil, nil
}

func (f *fakeDB) PutPrivacyTokens(_ context.Context, toks ...store.PrivacyToken) error {
	for _, t := range toks {
		f.tokens[t.User] = t
	}
	return f.write()
}

func (f *fakeDB) DeleteExpiredPrivacyTokens(_ context.Context, cutoff time.Time) (int64, error) {
	var n int64
	for u, t := range f.tokens {
		if t.Timestamp.Before(cutoff) {
			delete(f.tokens, u)
			n++
		}
	}
	return n, f.write()
}

func (f *fakeDB) GetNCTSalt(context.Context) ([]byte, error) {
	f.reads++
	return f.salt, nil
}

func (f *fakeDB) PutNCTSalt(_ context.Context, salt []byte) error {
	f.salt = salt
	return f.write()
}

func (f *fakeDB) DeleteNCTSalt(context.Context) error {
	f.salt = nil
	return f.write()
}

func (f *fakeDB) PutLIDMapping(context.Context, types.JID, types.JID) error { return f.write() }

// DoDecryptionTxn rolls back the sessions when fn fails, like the SQL store.
func (f *fakeDB) DoDecryptionTxn(ctx context.Context, fn func(context.Context) error) error {
	before := maps.Clone(f.sessions)
	if err := fn(ctx); err != nil {
		f.sessions = before
		return err
	}
	return nil
}

func (f *fakeDB) PutDevice(_ context.Context, dev *store.Device) error {
	if !dev.Initialized {
		dev.Sessions, dev.Identities, dev.PrivacyTokens, dev.LIDs, dev.EventBuffer, dev.NCTSalt = f, f, f, f, f, f
		dev.Initialized = true
	}
	return nil
}

func (f *fakeDB) DeleteDevice(context.Context, *store.Device) error {
	clear(f.sessions)
	return nil
}

// newDevice returns a paired device whose stores are f, behind the cache.
func newDevice(f *fakeDB) *store.Device {
	dev := &store.Device{Container: f}
	if err := f.PutDevice(context.Background(), dev); err != nil {
		panic(err)
	}
	Attach(dev, nil, nil)
	return dev
}

func session(t *testing.T, dev *store.Device, addr string) []byte {
	t.Helper()
	got, err := dev.Sessions.GetSession(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSendPathReadsOnce(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	db.sessions["alice:0"] = []byte("s0")
	dev := newDevice(db)

	for range 3 {
		got, err := dev.Sessions.GetManySessions(ctx, []string{"alice:0", "phone:0"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got["alice:0"], []byte("s0")) || got["phone:0"] != nil {
			t.Fatalf("sessions = %q", got)
		}
	}
	if db.reads != 1 {
		t.Errorf("3 lookups of the same sessions read the database %d times, want 1", db.reads)
	}
	if err := dev.Sessions.PutManySessions(ctx, map[string][]byte{"alice:0": []byte("s1"), "phone:0": []byte("p1")}); err != nil {
		t.Fatal(err)
	}
	if db.writes != 1 || !bytes.Equal(db.sessions["alice:0"], []byte("s1")) {
		t.Fatalf("write did not reach the database: %d writes, alice:0 = %q", db.writes, db.sessions["alice:0"])
	}
	if got := session(t, dev, "phone:0"); !bytes.Equal(got, []byte("p1")) {
		t.Errorf("phone:0 after the write = %q, want p1", got)
	}
	if has, _ := dev.Sessions.HasSession(ctx, "nobody:0"); has {
		t.Error("HasSession(nobody:0) = true")
	}
	if db.reads != 2 {
		t.Errorf("reads = %d, want 2 (the first lookup and nobody:0)", db.reads)
	}
}

func TestIdentities(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	dev := newDevice(db)
	k1, k2 := [32]byte{1}, [32]byte{2}

	steps := []struct {
		do            string
		key           [32]byte
		trusted       bool
		reads, writes int
		stored        [32]byte
	}{
		{do: "trust", key: k1, trusted: true, reads: 1},            // unknown: asks the store
		{do: "put", key: k1, reads: 1, writes: 1, stored: k1},      // first save is written
		{do: "trust", key: k1, trusted: true, reads: 1},            // known now
		{do: "put", key: k1, reads: 1, writes: 1, stored: k1},      // same key: nothing written
		{do: "trust", key: k2, trusted: false, reads: 1},           // changed identity is refused from memory
		{do: "put", key: k2, reads: 1, writes: 2, stored: k2},      // a new key is written
		{do: "trust", key: k2, trusted: true, reads: 1, writes: 2}, // and trusted from then on
	}
	for i, s := range steps {
		switch s.do {
		case "trust":
			got, err := dev.Identities.IsTrustedIdentity(ctx, "alice:0", s.key)
			if err != nil || got != s.trusted {
				t.Fatalf("step %d: trusted = %v, %v; want %v", i, got, err, s.trusted)
			}
		case "put":
			if err := dev.Identities.PutIdentity(ctx, "alice:0", s.key); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if db.identities["alice:0"] != s.stored {
				t.Fatalf("step %d: stored key %x, want %x", i, db.identities["alice:0"][0], s.stored[0])
			}
		}
		if db.reads != s.reads || (s.do == "put" && db.writes != s.writes) {
			t.Fatalf("step %d (%s): %d reads, %d writes; want %d, %d", i, s.do, db.reads, db.writes, s.reads, s.writes)
		}
	}
}

// An identity change notified from a LID (whatsmeow passes the LID's user)
// forgets the identities of the LID's addresses, in the database and in
// memory: the new install's key is then trusted, not refused.
func TestIdentityChangeOfALID(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	dev := newDevice(db)
	old, reinstalled := [32]byte{1}, [32]byte{2}
	for _, addr := range []string{"9911_1:0", "alice:0"} {
		if err := dev.Identities.PutIdentity(ctx, addr, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.Identities.DeleteAllIdentities(ctx, "9911"); err != nil {
		t.Fatal(err)
	}
	if ok, err := dev.Identities.IsTrustedIdentity(ctx, "9911_1:0", reinstalled); err != nil || !ok {
		t.Errorf("the new install's key: trusted %v, %v; want trusted (the old one forgotten)", ok, err)
	}
	if _, kept := db.identities["alice:0"]; !kept || len(db.identities) != 1 {
		t.Errorf("identities left %v; want alice's only", db.identities)
	}
}

// TestCacheFollowsTheDatabase changes the database through the cache in
// every way whatsmeow does and checks that the next read sees the change.
func TestCacheFollowsTheDatabase(t *testing.T) {
	errBoom := errors.New("boom")
	lid := types.JID{User: "9911", Server: types.HiddenUserServer}
	pn := types.JID{User: "alice", Server: types.DefaultUserServer}
	cases := []struct {
		name   string
		change func(ctx context.Context, dev *store.Device, db *fakeDB) error
		want   map[string]string // address -> session ("" for none)
	}{
		{
			name: "failed write",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				db.failWrites = errBoom
				err := dev.Sessions.PutSession(ctx, "alice:0", []byte("lost"))
				db.failWrites = nil
				if !errors.Is(err, errBoom) {
					return errors.New("the write error was not returned")
				}
				return nil
			},
			want: map[string]string{"alice:0": "s0"},
		},
		{
			name: "delete one session",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				return dev.Sessions.DeleteSession(ctx, "alice:0")
			},
			want: map[string]string{"alice:0": "", "alice:1": "s1", "bob:0": "b0"},
		},
		{
			name: "delete all of a phone's sessions",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				return dev.Sessions.DeleteAllSessions(ctx, "alice")
			},
			want: map[string]string{"alice:0": "", "alice:1": "", "bob:0": "b0"},
		},
		{
			// whatsmeow's identity-change handler passes the LID's user;
			// its addresses are "9911_1:<device>".
			name: "delete all of a LID's sessions",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				return dev.Sessions.DeleteAllSessions(ctx, "9911")
			},
			want: map[string]string{"9911_1:0": "", "alice:0": "s0"},
		},
		{
			name: "move to LID",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				return dev.Sessions.MigratePNToLID(ctx, pn, lid)
			},
			want: map[string]string{"alice:0": "", "9911_1:0": "s0", "bob:0": "b0"},
		},
		{
			name: "decryption rolled back",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				err := dev.EventBuffer.DoDecryptionTxn(ctx, func(ctx context.Context) error {
					if err := dev.Sessions.PutSession(ctx, "alice:0", []byte("rolled back")); err != nil {
						return err
					}
					return errBoom
				})
				if !errors.Is(err, errBoom) {
					return errors.New("the transaction error was not returned")
				}
				return nil
			},
			want: map[string]string{"alice:0": "s0"},
		},
		{
			name: "device deleted",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				return dev.Container.DeleteDevice(ctx, dev)
			},
			want: map[string]string{"alice:0": "", "bob:0": ""},
		},
		{
			name: "read racing a write",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				// The read sees the old value; the write lands before it returns.
				db.duringRead = func() { _ = dev.Sessions.PutSession(ctx, "alice:0", []byte("new")) }
				dev.Sessions.(*sessions).c.purge()
				_, err := dev.Sessions.GetSession(ctx, "alice:0")
				return err
			},
			want: map[string]string{"alice:0": "new"},
		},
		{
			name: "read during a write",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				// A read while the write is under way finds the old value.
				dev.Sessions.(*sessions).c.purge()
				db.duringPut = func() { _, _ = dev.Sessions.GetSession(ctx, "alice:0") }
				return dev.Sessions.PutSession(ctx, "alice:0", []byte("new"))
			},
			want: map[string]string{"alice:0": "new"},
		},
		{
			name: "read during a delete",
			change: func(ctx context.Context, dev *store.Device, db *fakeDB) error {
				dev.Sessions.(*sessions).c.purge()
				db.duringPut = func() { _, _ = dev.Sessions.GetSession(ctx, "alice:0") }
				return dev.Sessions.DeleteAllSessions(ctx, "alice")
			},
			want: map[string]string{"alice:0": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := newFakeDB()
			db.sessions["alice:0"], db.sessions["alice:1"], db.sessions["bob:0"] = []byte("s0"), []byte("s1"), []byte("b0")
			db.sessions["9911_1:0"] = []byte("l0")
			dev := newDevice(db)
			for _, addr := range []string{"alice:0", "alice:1", "bob:0", "9911_1:0"} {
				session(t, dev, addr) // all cached
			}
			if err := tc.change(ctx, dev, db); err != nil {
				t.Fatal(err)
			}
			for addr, want := range tc.want {
				if got := string(session(t, dev, addr)); got != want {
					t.Errorf("%s = %q, want %q", addr, got, want)
				}
				if got := string(db.sessions[addr]); got != want {
					t.Errorf("database %s = %q, want %q (fake is wrong)", addr, got, want)
				}
			}
		})
	}
}

func TestPrivacyTokens(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	dev := newDevice(db)
	alice := types.JID{User: "alice", Server: types.DefaultUserServer}
	get := func() *store.PrivacyToken {
		t.Helper()
		tok, err := dev.PrivacyTokens.GetPrivacyToken(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	if get() != nil || get() != nil || db.reads != 1 {
		t.Fatalf("absent token: %d reads for two lookups, want 1", db.reads)
	}
	if err := dev.PrivacyTokens.PutPrivacyTokens(ctx, store.PrivacyToken{User: alice, Token: []byte("t1")}); err != nil {
		t.Fatal(err)
	}
	if tok := get(); tok == nil || string(tok.Token) != "t1" {
		t.Fatalf("after a new token: %+v", tok)
	}
	get()
	if db.reads != 2 {
		t.Fatalf("reads = %d, want 2", db.reads)
	}
	// A new LID mapping may change which row a lookup finds.
	if err := dev.LIDs.PutLIDMapping(ctx, types.JID{User: "9911", Server: types.HiddenUserServer}, alice); err != nil {
		t.Fatal(err)
	}
	get()
	if db.reads != 3 {
		t.Fatalf("after a LID mapping: reads = %d, want 3", db.reads)
	}
}

// underStore marks the decorator Attach puts beneath the cache.
type underStore struct{ store.SessionStore }

type overStore struct{ store.SessionStore }

func TestAttachUnpairedDevice(t *testing.T) {
	db := newFakeDB()
	dev := &store.Device{Container: db}
	unders, overs := 0, 0
	Attach(dev, func(inner store.SessionStore) store.SessionStore {
		unders++
		return underStore{inner}
	}, func(dev *store.Device) {
		overs++
		dev.Sessions = overStore{dev.Sessions}
	})
	if dev.Sessions != nil || unders != 0 || overs != 0 {
		t.Fatal("an unpaired device has no stores to wrap yet")
	}
	// Pairing saves the device, and whatsmeow creates its stores then.
	if err := dev.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, ok := dev.Sessions.(overStore)
	if !ok {
		t.Fatalf("after pairing, Sessions is %T, want the decorator over the cache", dev.Sessions)
	}
	c, ok := o.SessionStore.(*sessions)
	if !ok {
		t.Fatalf("beneath the outer decorator is %T, want the cache", o.SessionStore)
	}
	if u, ok := c.SessionStore.(underStore); !ok || u.SessionStore != db {
		t.Fatalf("beneath the cache is %T, want the decorator over the database", c.SessionStore)
	}
	inner := dev.Sessions
	if err := dev.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dev.Sessions != inner || unders != 1 || overs != 1 {
		t.Errorf("saving again wrapped the stores again (%d decorations beneath, %d above)", unders, overs)
	}
}

// TestExpiredTokensLeaveTheCache: whatsmeow prunes old privacy tokens from
// the database; a cached copy must not outlive the row.
func TestExpiredTokensLeaveTheCache(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	dev := newDevice(db)
	alice := types.NewJID("4915112345678", types.DefaultUserServer)
	if err := dev.PrivacyTokens.PutPrivacyTokens(ctx, store.PrivacyToken{User: alice, Token: []byte("t1"), Timestamp: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	if tok, err := dev.PrivacyTokens.GetPrivacyToken(ctx, alice); err != nil || tok == nil {
		t.Fatalf("token before pruning: %v, %v", tok, err)
	}
	n, err := dev.PrivacyTokens.DeleteExpiredPrivacyTokens(ctx, time.Unix(200, 0))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredPrivacyTokens = %d, %v; want 1 row", n, err)
	}
	if tok, err := dev.PrivacyTokens.GetPrivacyToken(ctx, alice); err != nil || tok != nil {
		t.Fatalf("token after pruning = %+v, %v; want none", tok, err)
	}
}

// TestNCTSaltReadOnce: whatsmeow reads the salt for every send without a
// privacy token; the database is asked once, and again only after a change.
func TestNCTSaltReadOnce(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	dev := newDevice(db)
	for range 3 {
		if salt, err := dev.NCTSalt.GetNCTSalt(ctx); err != nil || salt != nil {
			t.Fatalf("salt before any = %q, %v", salt, err)
		}
	}
	if db.reads != 1 {
		t.Fatalf("3 reads of an absent salt reached the database %d times, want 1", db.reads)
	}
	if err := dev.NCTSalt.PutNCTSalt(ctx, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if salt, _ := dev.NCTSalt.GetNCTSalt(ctx); string(salt) != "s1" || db.reads != 1 {
		t.Fatalf("after a put: %q with %d reads, want s1 from the cache", salt, db.reads)
	}
	if err := dev.NCTSalt.DeleteNCTSalt(ctx); err != nil {
		t.Fatal(err)
	}
	if salt, _ := dev.NCTSalt.GetNCTSalt(ctx); salt != nil || db.reads != 2 {
		t.Fatalf("after a delete: %q with %d reads, want none, read again", salt, db.reads)
	}
}
