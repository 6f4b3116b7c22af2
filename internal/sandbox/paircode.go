package sandbox

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"go.mau.fi/whatsmeow/util/keys"
)

// codeReg is a pending phone-code link started by the client's companion_hello.
type codeReg struct {
	c            *conn
	ref          string
	wrappedEph   []byte
	noisePub     []byte
	finish       chan waBinary.Node
	primaryEph   *keys.KeyPair
	companionEph []byte
}

// linkCodeIterations matches pair-code.go: 2<<16 rounds of PBKDF2-SHA256.
const linkCodeIterations = 2 << 16

func (s *Server) handleLinkCodeIQ(c *conn, n *waBinary.Node) {
	reg := n.GetChildByTag("link_code_companion_reg")
	stage, _ := reg.Attrs["stage"].(string)
	switch stage {
	case "companion_hello":
		jid, _ := reg.Attrs["jid"].(types.JID)
		wrapped := nodeBytes(reg.GetChildByTag("link_code_pairing_wrapped_companion_ephemeral_pub"))
		c.mu.Lock()
		pairing := c.pair != nil
		c.mu.Unlock()
		if !pairing || len(wrapped) != 80 {
			c.sendLogged(iqError(n, 400, "bad-request"))
			return
		}
		if jid.User != s.opts.PhoneNumber {
			// The simulated phone only owns the bot account's number.
			c.sendLogged(iqError(n, 404, "not-found"))
			return
		}
		r := &codeReg{c: c, ref: randomB64(24), wrappedEph: wrapped,
			noisePub: nodeBytes(reg.GetChildByTag("companion_server_auth_key_pub")), finish: make(chan waBinary.Node, 1)}
		s.mu.Lock()
		s.codeRegs = append(s.codeRegs, r)
		s.emitLocked(Event{Kind: EventPairCodeRequest, ConnID: c.id, JID: jid.String()})
		s.mu.Unlock()
		c.sendLogged(iqResult(n, waBinary.Node{Tag: "link_code_companion_reg", Content: []waBinary.Node{
			{Tag: "link_code_pairing_ref", Content: []byte(r.ref)},
		}}))
	case "companion_finish":
		ref := string(nodeBytes(reg.GetChildByTag("link_code_pairing_ref")))
		s.mu.Lock()
		var found *codeReg
		for _, r := range s.codeRegs {
			if r.ref == ref && r.c == c {
				found = r
			}
		}
		s.mu.Unlock()
		if found == nil {
			c.sendLogged(iqError(n, 404, "not-found"))
			return
		}
		select {
		case found.finish <- reg:
		default:
		}
		c.sendLogged(iqResult(n))
	default:
		c.sendLogged(iqError(n, 400, "bad-request"))
	}
}

func linkCodeCipher(code string, salt, iv []byte) (cipher.Stream, error) {
	key, err := pbkdf2.Key(sha256.New, code, salt, linkCodeIterations, 32)
	if err != nil {
		return nil, fmt.Errorf("derive link code key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("link code cipher: %w", err)
	}
	return cipher.NewCTR(block, iv), nil
}

// EnterCode makes the simulated phone enter a pairing code shown by the bot (cli.PairPhone)
// and link the device. It returns once the client has confirmed the pairing.
func (s *Server) EnterCode(ctx context.Context, code string) error {
	code = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(code) != 8 {
		return errors.New("enter code: want 8 characters")
	}
	s.mu.Lock()
	var r *codeReg
	if len(s.codeRegs) > 0 {
		r = s.codeRegs[len(s.codeRegs)-1]
	}
	s.mu.Unlock()
	if r == nil {
		return errors.New("enter code: no client is waiting for a phone code")
	}
	// Recover the companion's ephemeral key: it was wrapped with the code.
	ctr, err := linkCodeCipher(code, r.wrappedEph[:32], r.wrappedEph[32:48])
	if err != nil {
		return fmt.Errorf("enter code: %w", err)
	}
	companionEph := make([]byte, 32)
	ctr.XORKeyStream(companionEph, r.wrappedEph[48:80])

	primaryEph := keys.NewKeyPair()
	salt, iv := make([]byte, 32), make([]byte, 16)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)
	ctr, err = linkCodeCipher(code, salt, iv)
	if err != nil {
		return fmt.Errorf("enter code: %w", err)
	}
	wrappedPrimary := make([]byte, 32)
	ctr.XORKeyStream(wrappedPrimary, primaryEph.Pub[:])
	phoneKey := s.phone.dev.IdentityKey
	r.c.sendLogged(waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
		"from": types.ServerJID, "type": "link_code_companion_reg", "id": r.c.newID("code"),
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{{Tag: "link_code_companion_reg", Attrs: waBinary.Attrs{"stage": "primary_hello"}, Content: []waBinary.Node{
		{Tag: "link_code_pairing_ref", Content: []byte(r.ref)},
		{Tag: "link_code_pairing_wrapped_primary_ephemeral_pub", Content: concat(salt, iv, wrappedPrimary)},
		{Tag: "primary_identity_pub", Content: phoneKey.Pub[:]},
	}}}})

	var finish waBinary.Node
	select {
	case finish = <-r.finish:
	case <-ctx.Done():
		return fmt.Errorf("enter code: wait for companion_finish: %w", ctx.Err())
	case <-r.c.ctx.Done():
		return errors.New("enter code: client disconnected")
	}
	wrappedBundle := nodeBytes(finish.GetChildByTag("link_code_pairing_wrapped_key_bundle"))
	companionIdentity := nodeBytes(finish.GetChildByTag("companion_identity_public"))
	if len(wrappedBundle) < 32+12+16 || len(companionIdentity) != 32 {
		return errors.New("enter code: malformed companion_finish")
	}
	ephShared, err := curve25519.X25519(primaryEph.Priv[:], companionEph)
	if err != nil {
		return fmt.Errorf("enter code: ephemeral dh: %w", err)
	}
	bundleKey := hkdfutil.SHA256(ephShared, wrappedBundle[:32], []byte("link_code_pairing_key_bundle_encryption_key"), 32)
	block, err := aes.NewCipher(bundleKey)
	if err != nil {
		return fmt.Errorf("enter code: bundle cipher: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("enter code: bundle cipher: %w", err)
	}
	bundle, err := gcm.Open(nil, wrappedBundle[32:44], wrappedBundle[44:], nil)
	if err != nil {
		// A wrong code yields a wrong ephemeral key, hence this failure.
		return errors.New("enter code: wrong code (key bundle does not decrypt)")
	}
	if len(bundle) != 96 || !bytes.Equal(bundle[:32], companionIdentity) || !bytes.Equal(bundle[32:64], phoneKey.Pub[:]) {
		return errors.New("enter code: key bundle does not match the identities")
	}
	identityShared, err := curve25519.X25519(phoneKey.Priv[:], companionIdentity)
	if err != nil {
		return fmt.Errorf("enter code: identity dh: %w", err)
	}
	advSecret := hkdfutil.SHA256(concat(ephShared, identityShared, bundle[64:96]), nil, []byte("adv_secret"), 32)

	r.c.mu.Lock()
	info := r.c.pair
	r.c.mu.Unlock()
	if info == nil || !bytes.Equal(info.identityPub, companionIdentity) {
		return errors.New("enter code: identity differs from the registering connection")
	}
	s.mu.Lock()
	for i, x := range s.codeRegs {
		if x == r {
			s.codeRegs = append(s.codeRegs[:i], s.codeRegs[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	return s.completePairing(ctx, r.c, info, advSecret)
}
