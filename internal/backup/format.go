package backup

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mau.fi/whatsmeow/types"
	"golang.org/x/crypto/chacha20poly1305"
)

// The file format, version 1:
//
//	blacksky-backup v1\n
//	{"created_at":…,"session_id":…,"jid":…,"kdf":{…},"key_check":…,"cipher":…,"nonce":…,"payload":…}\n
//	XChaCha20-Poly1305 ciphertext of gzip(JSON payload), with the two lines above as associated data
//	SHA-256 of everything above (32 bytes)
//
// The header is readable with head(1) and authenticated by the AEAD. The
// trailing checksum is unkeyed: it tells a truncated or damaged file
// (ErrCorrupt) apart from a wrong passphrase (ErrWrongKey, by the key
// check value) before any key is derived.
const (
	magic        = "blacksky-backup v1"
	magicPrefix  = "blacksky-backup "
	cipherName   = "xchacha20-poly1305"
	kdfName      = "argon2id"
	payloadName  = "gzip+json"
	maxHeaderLen = 4096
	// MaxSize is the largest backup Decode and the readers accept.
	MaxSize      = 256 << 20
	maxPlaintext = 1 << 30
)

type header struct {
	CreatedAt time.Time `json:"created_at"`
	SessionID string    `json:"session_id"`
	JID       string    `json:"jid"`
	KDF       kdfHeader `json:"kdf"`
	KeyCheck  []byte    `json:"key_check"`
	Cipher    string    `json:"cipher"`
	Nonce     []byte    `json:"nonce"`
	Payload   string    `json:"payload"`
}

type kdfHeader struct {
	Name string `json:"name"`
	kdfParams
}

type payload struct {
	PairedAt int64   `json:"paired_at"`
	Tables   []Table `json:"tables"`
}

// Info is what the plaintext header of a backup says.
type Info struct {
	SessionID string
	JID       types.JID
	CreatedAt time.Time
}

// Encode seals the session with a key stretched from passphrase.
func Encode(s *Session, passphrase string) ([]byte, error) {
	k, err := newKeyring(passphrase, defaultKDF)
	if err != nil {
		return nil, err
	}
	return k.encode(s)
}

// Decode opens a backup. Damaged or foreign data gives ErrCorrupt, an
// intact backup sealed with another passphrase ErrWrongKey.
func Decode(data []byte, passphrase string) (*Session, error) {
	k, err := newKeyring(passphrase, defaultKDF)
	if err != nil {
		return nil, err
	}
	return k.decode(data)
}

// Inspect checks a backup's integrity and returns its header, without a key.
func Inspect(data []byte) (Info, error) {
	h, _, _, err := parse(data)
	if err != nil {
		return Info{}, err
	}
	jid, _ := types.ParseJID(h.JID) // checked by parse
	return Info{SessionID: h.SessionID, JID: jid, CreatedAt: h.CreatedAt}, nil
}

func (k *keyring) encode(s *Session) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	if err := json.NewEncoder(zw).Encode(payload{PairedAt: s.PairedAt.UnixMilli(), Tables: s.Tables}); err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	params, keys, err := k.forWriting()
	if err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	h := header{
		CreatedAt: s.CreatedAt.UTC(),
		SessionID: s.SessionID,
		JID:       s.JID.String(),
		KDF:       kdfHeader{Name: kdfName, kdfParams: params},
		KeyCheck:  keys.check,
		Cipher:    cipherName,
		Nonce:     make([]byte, chacha20poly1305.NonceSizeX),
		Payload:   payloadName,
	}
	rand.Read(h.Nonce)
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	aead, err := chacha20poly1305.NewX(keys.enc)
	if err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	out := make([]byte, 0, len(magic)+len(hj)+2+plain.Len()+aead.Overhead()+sha256.Size)
	out = append(out, magic+"\n"...)
	out = append(out, hj...)
	out = append(out, '\n')
	out = aead.Seal(out, h.Nonce, plain.Bytes(), out)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

func (k *keyring) decode(data []byte) (*Session, error) {
	h, prefix, ct, err := parse(data)
	if err != nil {
		return nil, err
	}
	keys, err := k.keys(h.KDF.kdfParams)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(keys.check, h.KeyCheck) != 1 {
		return nil, ErrWrongKey
	}
	aead, err := chacha20poly1305.NewX(keys.enc)
	if err != nil {
		return nil, fmt.Errorf("decode backup: %w", err)
	}
	plain, err := aead.Open(nil, h.Nonce, ct, prefix)
	if err != nil {
		// The checksum matched and the key is right: the file was altered
		// by someone who recomputed the checksum.
		return nil, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	zr, err := gzip.NewReader(bytes.NewReader(plain))
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrCorrupt, err)
	}
	return decodePayload(zr, h)
}

// decodePayload reads the JSON payload into a session described by h.
func decodePayload(r io.Reader, h header) (*Session, error) {
	var p payload
	if err := json.NewDecoder(io.LimitReader(r, maxPlaintext)).Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrCorrupt, err)
	}
	jid, _ := types.ParseJID(h.JID) // checked by parse
	s := &Session{
		SessionID: h.SessionID,
		JID:       jid,
		CreatedAt: h.CreatedAt,
		PairedAt:  time.UnixMilli(p.PairedAt).UTC(),
		Tables:    p.Tables,
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return s, nil
}

// parse checks the framing and checksum and decodes the header; it
// returns the authenticated prefix and the ciphertext.
func parse(data []byte) (h header, prefix, ct []byte, err error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if !bytes.HasPrefix(data, []byte(magicPrefix)) {
		return h, nil, nil, corrupt("not a blacksky backup")
	}
	if !bytes.HasPrefix(data, []byte(magic+"\n")) {
		line, _, _ := bytes.Cut(data[:min(len(data), 64)], []byte("\n"))
		return h, nil, nil, corrupt("unsupported format %q", line)
	}
	if len(data) > MaxSize {
		return h, nil, nil, corrupt("%d bytes, more than the %d a backup may have", len(data), MaxSize)
	}
	if len(data) < len(magic)+1+sha256.Size {
		return h, nil, nil, corrupt("truncated")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(want[:], sum) {
		return h, nil, nil, corrupt("checksum mismatch: the file is truncated or damaged")
	}
	rest := body[len(magic)+1:]
	i := bytes.IndexByte(rest[:min(len(rest), maxHeaderLen)], '\n')
	if i < 0 {
		return h, nil, nil, corrupt("no header")
	}
	dec := json.NewDecoder(bytes.NewReader(rest[:i]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, nil, corrupt("header: %v", err)
	}
	if err := h.check(); err != nil {
		return h, nil, nil, corrupt("header: %v", err)
	}
	prefixLen := len(magic) + 1 + i + 1
	return h, body[:prefixLen], body[prefixLen:], nil
}

func (h *header) check() error {
	var errs []error
	if h.SessionID == "" {
		errs = append(errs, errors.New("no session_id"))
	}
	if jid, err := types.ParseJID(h.JID); err != nil || jid.IsEmpty() {
		errs = append(errs, fmt.Errorf("bad jid %q", h.JID))
	}
	if h.CreatedAt.IsZero() {
		errs = append(errs, errors.New("no created_at"))
	}
	if h.KDF.Name != kdfName {
		errs = append(errs, fmt.Errorf("unknown kdf %q", h.KDF.Name))
	} else if err := h.KDF.check(); err != nil {
		errs = append(errs, err)
	}
	if len(h.KeyCheck) != 32 {
		errs = append(errs, errors.New("bad key_check"))
	}
	if h.Cipher != cipherName || len(h.Nonce) != chacha20poly1305.NonceSizeX {
		errs = append(errs, fmt.Errorf("unknown cipher %q", h.Cipher))
	}
	if h.Payload != payloadName {
		errs = append(errs, fmt.Errorf("unknown payload %q", h.Payload))
	}
	return errors.Join(errs...)
}
