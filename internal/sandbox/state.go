package sandbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"

	"github.com/blacksky-bot/blacksky/internal/signalcache"
	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

const stateFile = "sandbox.json"

// preKeyRec is a public prekey as uploaded by a linked device.
type preKeyRec struct {
	ID  uint32 `json:"id"`
	Pub []byte `json:"pub"`
	Sig []byte `json:"sig,omitempty"`
}

// deviceRec is what the server knows about one linked companion device.
type deviceRec struct {
	Device       uint16      `json:"device"`
	NoisePub     []byte      `json:"noise_pub"`
	IdentityPub  []byte      `json:"identity_pub"`
	RegID        uint32      `json:"reg_id"`
	SignedPreKey preKeyRec   `json:"signed_prekey"`
	PreKeys      []preKeyRec `json:"prekeys"`
	Platform     string      `json:"platform"`
	LinkedAt     time.Time   `json:"linked_at"`
}

// account is the bot's WhatsApp account: a phone plus linked devices.
type account struct {
	Phone      string                `json:"phone"`
	LIDUser    string                `json:"lid_user"`
	NextDevice uint16                `json:"next_device"`
	Devices    map[uint16]*deviceRec `json:"devices"`
}

type persisted struct {
	CACertPEM     string   `json:"ca_cert_pem"`
	CAKeyPEM      string   `json:"ca_key_pem"`
	NoiseRootPriv []byte   `json:"noise_root_priv"`
	Account       *account `json:"account"`
	Contacts      []string `json:"contacts"`
	// Addressing is "lid" or "pn" per contact; a contact not listed is
	// addressed as Options.PhoneNumberContacts says.
	Addressing map[string]string `json:"addressing,omitempty"`
	// ClientVersions are what the sandbox accepts and serves; absent means the defaults.
	ClientVersions *clientVersionsJSON `json:"client_versions,omitempty"`
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// load restores or creates keys, account, phone and contacts from dir.
func (s *Server) load(dir string) error {
	var st persisted
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("load sandbox state: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("load sandbox state: %w", err)
	}
	if st.CACertPEM == "" {
		certPEM, keyPEM, err := newCA()
		if err != nil {
			return err
		}
		st.CACertPEM, st.CAKeyPEM = string(certPEM), string(keyPEM)
	}
	if s.opts.NoiseRootKey != nil {
		st.NoiseRootPriv = s.opts.NoiseRootKey
	}
	if st.NoiseRootPriv == nil {
		st.NoiseRootPriv = append([]byte(nil), keys.NewKeyPair().Priv[:]...)
	}
	root, err := keyPairFromPriv(st.NoiseRootPriv)
	if err != nil {
		return fmt.Errorf("load noise root: %w", err)
	}
	tlsCert, err := leafCert([]byte(st.CACertPEM), []byte(st.CAKeyPEM))
	if err != nil {
		return err
	}
	static := keys.NewKeyPair()
	chain, err := noiseCertChain(root, static)
	if err != nil {
		return err
	}
	s.keys = &serverKeys{
		caCertPEM: []byte(st.CACertPEM), caKeyPEM: []byte(st.CAKeyPEM),
		tlsCert: tlsCert, noiseRoot: root, static: static, certChain: chain,
	}
	if st.Account == nil || st.Account.Phone != s.opts.PhoneNumber {
		st.Account = &account{Phone: s.opts.PhoneNumber, LIDUser: randomDigits(15), NextDevice: 1}
	}
	if st.Account.Devices == nil {
		st.Account.Devices = make(map[uint16]*deviceRec)
	}
	s.acct = st.Account
	if s.versions, err = loadVersions(st.ClientVersions); err != nil {
		return err
	}

	// A throwaway store need not survive power loss; skipping fsync keeps tests fast.
	durable := s.opts.DataDir != ""
	sig, err := openSignalStore(s.ctx, filepath.Join(dir, "signal.db"), durable)
	if err != nil {
		return err
	}
	s.signal = sig
	phoneDev, err := sig.device(s.ctx, types.NewJID(s.opts.PhoneNumber, types.DefaultUserServer))
	if err != nil {
		return fmt.Errorf("load phone: %w", err)
	}
	s.phone = &Contact{s: s, number: s.opts.PhoneNumber, dev: phoneDev, settings: s.defaultContactSettings()}
	for _, number := range st.Contacts {
		if _, err := s.addContact(s.ctx, number, false, st.Addressing[number]); err != nil {
			return fmt.Errorf("load contact %s: %w", number, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// saveLocked writes the persistent state when a data directory is configured; s.mu must be held.
func (s *Server) saveLocked() error {
	if s.opts.DataDir == "" {
		return nil
	}
	st := persisted{
		CACertPEM:     string(s.keys.caCertPEM),
		CAKeyPEM:      string(s.keys.caKeyPEM),
		NoiseRootPriv: s.keys.noiseRoot.Priv[:],
		Account:       s.acct,
	}
	versions := s.versions.wire()
	st.ClientVersions = &versions
	st.Addressing = map[string]string{}
	for number, ct := range s.contacts {
		st.Contacts = append(st.Contacts, number)
		st.Addressing[number] = addressingPN
		if ct.lid != "" {
			st.Addressing[number] = addressingLID
		}
	}
	raw, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return fmt.Errorf("save sandbox state: %w", err)
	}
	path := filepath.Join(s.opts.DataDir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("save sandbox state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save sandbox state: %w", err)
	}
	return nil
}

func (s *Server) save() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist sandbox state", "err", err)
	}
}

func randomDigits(n int) string {
	out := make([]byte, n)
	for i := range out {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		out[i] = byte('0' + d.Int64())
	}
	if out[0] == '0' {
		out[0] = '1'
	}
	return string(out)
}

// signalStore keeps the Signal identities and sessions of the simulated phone
// and contacts in a whatsmeow sqlstore, so they survive restarts with a data dir.
// Each device reads through internal/signalcache, which is right because the
// sandbox is the only writer of this database. Decrypting the two copies of
// every message the bot sends (the contact's and the phone's) was a quarter
// of the CPU of BenchmarkQueueDelivery's process, most of it reading the same
// sessions and identities back from SQLite; the bot under measurement shares
// that CPU. (The delivery figure did not move beyond this machine's spread,
// docs/QUEUE.md.)
type signalStore struct {
	db        *sql.DB
	container *sqlstore.Container
}

func openSignalStore(ctx context.Context, path string, durable bool) (*signalStore, error) {
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	if durable {
		dsn += "&_pragma=synchronous(NORMAL)"
	} else {
		dsn += "&_pragma=synchronous(OFF)"
	}
	// The simulated devices' Signal work parses the same few statements
	// for every message; the cache keeps the sandbox's CPU for the bot.
	db := sqlitedb.Open(dsn, sqlitedb.Options{CacheSize: 64, IdleConns: 8})
	container := sqlstore.NewWithDB(db, "sqlite3", nil)
	if err := container.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upgrade signal store: %w", err)
	}
	return &signalStore{db: db, container: container}, nil
}

// device returns the Signal device stored under jid, creating it on first use.
func (ss *signalStore) device(ctx context.Context, jid types.JID) (*store.Device, error) {
	dev, err := ss.container.GetDevice(ctx, jid)
	if err != nil {
		return nil, fmt.Errorf("get signal device %s: %w", jid, err)
	}
	if dev != nil {
		signalcache.Attach(dev, nil, nil)
		return dev, nil
	}
	dev = ss.container.NewDevice()
	dev.ID = &jid
	// The device table requires ADV fields even for devices that never paired: use placeholders.
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details: []byte{}, AccountSignature: make([]byte, 64), AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64),
	}
	dev.Platform = "sandbox"
	if err := dev.Save(ctx); err != nil {
		return nil, fmt.Errorf("save signal device %s: %w", jid, err)
	}
	signalcache.Attach(dev, nil, nil)
	return dev, nil
}

func (ss *signalStore) close() error {
	return ss.container.Close()
}
