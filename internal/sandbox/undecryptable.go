package sandbox

import (
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow/store"
)

// An undecryptable message (FaultUndecryptable) is what a linked device gets
// from a sender whose Signal session with it has drifted (a restored backup,
// a crash between encrypting and saving): a ciphertext whose MAC does not
// verify under the device's session, WhatsApp's "Bad MAC". whatsmeow then
// reports events.UndecryptableMessage, sends the sender a retry receipt and,
// with AutomaticMessageRerequestFromPhone, asks the account's phone for the
// message (placeholder.go). The contact here ignores the retry receipt, as
// a sender that went offline does, so only the phone can recover the
// message. The contact's own ratchet moved on as for any message, so its
// later messages decrypt again.

// armUndecryptable makes the next contact message undecryptable.
func (s *Server) armUndecryptable() {
	s.mu.Lock()
	s.undecryptableNext = true
	s.notifyLocked()
	s.mu.Unlock()
}

// takeUndecryptable reports whether the fault is armed, and disarms it.
func (s *Server) takeUndecryptable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	armed := s.undecryptableNext
	s.undecryptableNext = false
	return armed
}

// spoilMAC returns a copy of a Signal ciphertext (pkmsg or msg) whose
// SignalMessage MAC, its last 8 bytes, no longer verifies.
func spoilMAC(encType string, ciphertext []byte) ([]byte, error) {
	flipLast := func(b []byte) ([]byte, error) {
		if len(b) == 0 {
			return nil, errors.New("spoil MAC: empty message")
		}
		out := append([]byte(nil), b...)
		out[len(out)-1] ^= 0xff
		return out, nil
	}
	switch encType {
	case "msg":
		return flipLast(ciphertext)
	case "pkmsg":
		// The SignalMessage is a field inside the PreKeySignalMessage, not its end.
		ser := store.SignalProtobufSerializer.PreKeySignalMessage
		st, err := ser.Deserialize(ciphertext)
		if err != nil {
			return nil, fmt.Errorf("spoil MAC: parse pkmsg: %w", err)
		}
		if st.Message, err = flipLast(st.Message); err != nil {
			return nil, err
		}
		return ser.Serialize(st), nil
	}
	return nil, fmt.Errorf("spoil MAC: unsupported enc type %q", encType)
}
