package sandbox

import (
	"crypto/sha256"
	"errors"
)

// A sender may hand the server the very same message frame twice: whatsmeow
// does when the connection ends while it waits for the server's ack
// (send.go: a disconnect answers the wait, and retryFrame writes the same
// bytes again once it is connected). Each device then gets the same
// ciphertext again, whose counter its session has used up. Receivers drop
// such a copy as a duplicate, without a retry receipt: whatsmeow logs
// "Ignoring message" for signalerror.ErrOldCounter (message.go
// decryptMessages), WhatsApp's apps drop libsignal's DuplicateMessage. So
// contacts here do too, and only for a ciphertext they did decrypt before:
// another message under a used counter (a sender whose session went back)
// is still a decryption failure, which is what the chaos run looks for.

// errDuplicateCopy is the failure to decrypt a copy decrypted before.
var errDuplicateCopy = errors.New("a copy of this ciphertext was decrypted already")

// rememberedCopies bounds what a contact remembers: a repeated frame
// follows its first within a reconnect, a few messages later at most.
const rememberedCopies = 1024

// decryptedCopies remembers the ciphertexts a contact decrypted last.
type decryptedCopies struct {
	set  map[[32]byte]bool
	ring [][32]byte // insertion order, for forgetting the oldest
	next int
}

func copyKey(sender string, ciphertext []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(sender))
	h.Write([]byte{0})
	h.Write(ciphertext)
	return [32]byte(h.Sum(nil))
}

func (d *decryptedCopies) seen(sender string, ciphertext []byte) bool {
	return d.set[copyKey(sender, ciphertext)]
}

func (d *decryptedCopies) add(sender string, ciphertext []byte) {
	if d.set == nil {
		d.set = make(map[[32]byte]bool, rememberedCopies)
	}
	k := copyKey(sender, ciphertext)
	if d.set[k] {
		return
	}
	if len(d.ring) < rememberedCopies {
		d.ring = append(d.ring, k)
	} else {
		delete(d.set, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % rememberedCopies
	}
	d.set[k] = true
}
