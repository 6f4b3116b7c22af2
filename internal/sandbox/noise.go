package sandbox

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"

	"go.mau.fi/whatsmeow/util/gcmutil"
)

const noisePattern = "Noise_XX_25519_AESGCM_SHA256\x00\x00\x00\x00"

// noiseState is the server half of the Noise XX handshake; whatsmeow's
// socket.NoiseHandshake only implements the initiator side.
type noiseState struct {
	hash    []byte
	salt    []byte
	key     cipher.AEAD
	counter uint32
}

func newNoiseState(header []byte) (*noiseState, error) {
	ns := &noiseState{hash: []byte(noisePattern), salt: []byte(noisePattern)}
	var err error
	if ns.key, err = gcmutil.Prepare(ns.hash); err != nil {
		return nil, fmt.Errorf("noise init: %w", err)
	}
	ns.authenticate(header)
	return ns, nil
}

func (ns *noiseState) authenticate(data []byte) {
	h := sha256.New()
	h.Write(ns.hash)
	h.Write(data)
	ns.hash = h.Sum(nil)
}

func nonce(counter uint32) []byte {
	iv := make([]byte, 12)
	binary.BigEndian.PutUint32(iv[8:], counter)
	return iv
}

func (ns *noiseState) encrypt(plaintext []byte) []byte {
	ct := ns.key.Seal(nil, nonce(ns.counter), plaintext, ns.hash)
	ns.counter++
	ns.authenticate(ct)
	return ct
}

func (ns *noiseState) decrypt(ciphertext []byte) ([]byte, error) {
	pt, err := ns.key.Open(nil, nonce(ns.counter), ciphertext, ns.hash)
	ns.counter++
	if err != nil {
		return nil, err
	}
	ns.authenticate(ciphertext)
	return pt, nil
}

func (ns *noiseState) mixDH(priv, pub []byte) error {
	secret, err := curve25519.X25519(priv, pub)
	if err != nil {
		return fmt.Errorf("noise dh: %w", err)
	}
	first, second, err := expand(ns.salt, secret)
	if err != nil {
		return err
	}
	ns.salt = first
	ns.counter = 0
	if ns.key, err = gcmutil.Prepare(second); err != nil {
		return fmt.Errorf("noise mix key: %w", err)
	}
	return nil
}

// split returns the transport ciphers: the client writes with the first
// derived key, so the server reads with it and writes with the second.
func (ns *noiseState) split() (read, write cipher.AEAD, err error) {
	first, second, err := expand(ns.salt, nil)
	if err != nil {
		return nil, nil, err
	}
	if read, err = gcmutil.Prepare(first); err != nil {
		return nil, nil, fmt.Errorf("noise split: %w", err)
	}
	if write, err = gcmutil.Prepare(second); err != nil {
		return nil, nil, fmt.Errorf("noise split: %w", err)
	}
	return read, write, nil
}

func expand(salt, secret []byte) ([]byte, []byte, error) {
	r := hkdf.New(sha256.New, secret, salt, nil)
	a, b := make([]byte, 32), make([]byte, 32)
	if _, err := io.ReadFull(r, a); err != nil {
		return nil, nil, fmt.Errorf("noise hkdf: %w", err)
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, nil, fmt.Errorf("noise hkdf: %w", err)
	}
	return a, b, nil
}
