package backup

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// MinPassphraseLen is the shortest passphrase accepted, in characters.
const MinPassphraseLen = 16

// kdfParams are the Argon2id parameters of a backup, stored in its header.
type kdfParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// defaultKDF follows RFC 9106's second recommended option (64 MiB, 3
// passes): about half a second of CPU, paid once per process for writing
// (the derived key is cached for the salt) and once per salt on restore.
var defaultKDF = kdfParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// Bounds on the parameters Decode accepts from a file, so a crafted
// header cannot make us allocate gigabytes or spin for minutes.
const (
	maxKDFTime      = 16
	maxKDFMemoryKiB = 256 * 1024
	maxKDFThreads   = 16
	saltLen         = 16
)

func (p kdfParams) check() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range", p.Time)
	case p.Threads < 1 || p.Threads > maxKDFThreads:
		return fmt.Errorf("argon2id threads %d out of range", p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range", p.MemoryKiB)
	case len(p.Salt) != saltLen:
		return fmt.Errorf("salt of %d bytes", len(p.Salt))
	}
	return nil
}

func (p kdfParams) cacheKey() string {
	return fmt.Sprintf("%d/%d/%d/%x", p.Time, p.MemoryKiB, p.Threads, p.Salt)
}

// derivedKeys are the keys stretched from a passphrase for one salt: the
// AEAD key, and a check value stored in the header that tells a wrong
// passphrase apart from damaged data.
type derivedKeys struct {
	enc   []byte
	check []byte
}

// keyring derives keys from a passphrase and caches them per salt, so a
// schedule of backups and a restore that tries several files each pay for
// Argon2id once.
type keyring struct {
	passphrase string
	params     kdfParams // for new backups; the salt is picked on first use

	mu      sync.Mutex
	derived map[string]derivedKeys
}

func checkPassphrase(passphrase string) error {
	if passphrase == "" {
		return ErrNoKey
	}
	if utf8.RuneCountInString(passphrase) < MinPassphraseLen {
		return fmt.Errorf("%w: it has %d characters, at least %d are needed", ErrKeyTooShort, utf8.RuneCountInString(passphrase), MinPassphraseLen)
	}
	return nil
}

func newKeyring(passphrase string, params kdfParams) (*keyring, error) {
	if err := checkPassphrase(passphrase); err != nil {
		return nil, err
	}
	return &keyring{passphrase: passphrase, params: params, derived: map[string]derivedKeys{}}, nil
}

// forWriting returns the parameters and keys for a new backup. One salt
// per keyring is fine: every backup gets a fresh random 192-bit nonce.
func (k *keyring) forWriting() (kdfParams, derivedKeys, error) {
	k.mu.Lock()
	if k.params.Salt == nil {
		k.params.Salt = make([]byte, saltLen)
		rand.Read(k.params.Salt)
	}
	p := k.params
	k.mu.Unlock()
	keys, err := k.keys(p)
	return p, keys, err
}

func (k *keyring) keys(p kdfParams) (derivedKeys, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if d, ok := k.derived[p.cacheKey()]; ok {
		return d, nil
	}
	master := argon2.IDKey([]byte(k.passphrase), p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	enc, err := hkdf.Key(sha256.New, master, nil, "blacksky-backup v1 encryption", 32)
	if err != nil {
		return derivedKeys{}, fmt.Errorf("derive key: %w", err)
	}
	check, err := hkdf.Key(sha256.New, master, nil, "blacksky-backup v1 key check", 32)
	if err != nil {
		return derivedKeys{}, fmt.Errorf("derive key: %w", err)
	}
	d := derivedKeys{enc: enc, check: check}
	// A directory full of backups from many processes has many salts; a
	// few entries are all a restore needs, so the cache stays small.
	if len(k.derived) >= 16 {
		clear(k.derived)
	}
	k.derived[p.cacheKey()] = d
	return d, nil
}
