package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/libsignal/ecc"
	"google.golang.org/protobuf/proto"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/types"
)

// pairInfo is the registration data a not-yet-linked client sent in its handshake.
type pairInfo struct {
	noisePub    []byte
	identityPub []byte
	regID       uint32
	signedPre   preKeyRec
	refs        []string
}

const pairRefCount = 6

func (s *Server) onClientPayload(c *conn, p *waWa6.ClientPayload, clientStatic []byte) {
	if s.refuseOutdated(c, p) { // version.go
		return
	}
	if p.Username == nil {
		s.startPairing(c, p, clientStatic)
		return
	}
	s.login(c, p, clientStatic)
}

func (s *Server) startPairing(c *conn, p *waWa6.ClientPayload, clientStatic []byte) {
	reg := p.GetDevicePairingData()
	if reg == nil || len(reg.GetEIdent()) != 32 || len(reg.GetERegid()) != 4 || len(reg.GetESkeyID()) != 3 {
		s.log.Warn("registration payload without usable pairing data", "conn", c.id)
		c.close("bad registration payload")
		return
	}
	info := &pairInfo{
		noisePub:    clientStatic,
		identityPub: reg.GetEIdent(),
		regID:       binary.BigEndian.Uint32(reg.GetERegid()),
		signedPre: preKeyRec{
			ID:  binary.BigEndian.Uint32(append([]byte{0}, reg.GetESkeyID()...)),
			Pub: reg.GetESkeyVal(),
			Sig: reg.GetESkeySig(),
		},
	}
	refNodes := make([]waBinary.Node, pairRefCount)
	for i := range refNodes {
		ref := "2@" + randomB64(18)
		info.refs = append(info.refs, ref)
		refNodes[i] = waBinary.Node{Tag: "ref", Content: []byte(ref)}
	}
	c.mu.Lock()
	c.pair = info
	c.mu.Unlock()
	s.mu.Lock()
	for _, ref := range info.refs {
		s.refs[ref] = c
	}
	s.emitLocked(Event{Kind: EventPairRefs, ConnID: c.id, Detail: strings.Join(info.refs, " ")})
	s.mu.Unlock()
	// "from" must be a types.JID: whatsmeow compares it with types.ServerJID.
	c.sendLogged(waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{
		"from": types.ServerJID, "type": "set", "id": c.newID("pair"), "xmlns": "md",
	}, Content: []waBinary.Node{{Tag: "pair-device", Content: refNodes}}})
}

func (s *Server) login(c *conn, p *waWa6.ClientPayload, clientStatic []byte) {
	user := strconv.FormatUint(p.GetUsername(), 10)
	devID := uint16(p.GetDevice())
	jid := types.JID{User: user, Server: types.DefaultUserServer, Device: devID}
	if f, ok := s.activeFault(FaultBan); ok {
		expire := 3600
		if !f.until.IsZero() {
			expire = max(1, int(time.Until(f.until).Round(time.Second)/time.Second))
		}
		s.emit(Event{Kind: EventLoginRejected, ConnID: c.id, JID: jid.String(), Detail: "banned"})
		c.sendFailure(402, waBinary.Attrs{"code": "101", "expire": strconv.Itoa(expire)}, f.ImmediateClose)
		return
	}
	s.mu.Lock()
	var rec *deviceRec
	if user == s.acct.Phone {
		rec = s.acct.Devices[devID]
	}
	if rec == nil || !bytes.Equal(rec.NoisePub, clientStatic) {
		s.emitLocked(Event{Kind: EventLoginRejected, ConnID: c.id, JID: jid.String(), Detail: "unknown device"})
		s.mu.Unlock()
		c.sendFailure(401, nil, false)
		return
	}
	lid := types.JID{User: s.acct.LIDUser, Server: types.HiddenUserServer, Device: devID}
	c.mu.Lock()
	c.jid, c.loggedIn = jid, true
	c.mu.Unlock()
	// WhatsApp keeps one connection per device: the older one is told it was replaced.
	var older []*conn
	for _, other := range s.conns {
		if other == c {
			continue
		}
		if oj, ok := other.account(); ok && oj == jid {
			older = append(older, other)
		}
	}
	platform := rec.Platform
	s.emitLocked(Event{Kind: EventLogin, ConnID: c.id, JID: jid.String(), Detail: "version " + payloadVersion(p).String()})
	s.mu.Unlock()
	for _, o := range older {
		o.sendStreamError("", "replaced", false)
	}
	c.sendLogged(waBinary.Node{Tag: "success", Attrs: waBinary.Attrs{
		"t":            strconv.FormatInt(time.Now().Unix(), 10),
		"lid":          lid,
		"display_name": "",
		"platform":     platform,
		"creation":     strconv.FormatInt(rec.LinkedAt.Unix(), 10),
		"location":     "sandbox",
	}})
	if s.faultActive(FaultKillOnLogin) {
		c.close("fault kill_on_login")
		return
	}
	s.sendEdgeRouting(c)       // edgerouting.go
	s.deliverOffline(c, devID) // login.go: flushPending, then the end-of-backlog marker
}

// ScanQR makes the simulated phone scan a QR string shown by the bot and link it.
// It returns once the client has confirmed the pairing (before the 515 restart).
//
// Both payloads whatsmeow has shown are understood: the link current clients
// show (https://wa.me/settings/linked_devices#ref,noise,identity,adv,platform;
// whatsmeow pair.go makeQRData) and the bare four-part form of older ones
// (ref,noise,identity,adv).
func (s *Server) ScanQR(ctx context.Context, qr string) error {
	parts, err := parseQR(qr)
	if err != nil {
		return err
	}
	noisePub, err1 := base64.StdEncoding.DecodeString(parts[1])
	identityPub, err2 := base64.StdEncoding.DecodeString(parts[2])
	advSecret, err3 := base64.StdEncoding.DecodeString(parts[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("scan qr: %w", err)
	}
	s.mu.Lock()
	c := s.refs[parts[0]]
	s.mu.Unlock()
	if c == nil {
		return errors.New("scan qr: unknown or expired ref")
	}
	c.mu.Lock()
	info := c.pair
	c.mu.Unlock()
	if info == nil || !bytes.Equal(info.noisePub, noisePub) || !bytes.Equal(info.identityPub, identityPub) {
		return errors.New("scan qr: keys do not match the connection that showed this ref")
	}
	return s.completePairing(ctx, c, info, advSecret)
}

// qrLinkPrefix starts the QR payload of current WhatsApp Web clients.
const qrLinkPrefix = "https://wa.me/settings/linked_devices#"

// parseQR returns ref, noise key, identity key and ADV secret of a QR payload.
func parseQR(qr string) ([]string, error) {
	qr = strings.TrimSpace(qr)
	want := 4
	if rest, ok := strings.CutPrefix(qr, qrLinkPrefix); ok {
		qr, want = rest, 5
	}
	parts := strings.Split(qr, ",")
	if len(parts) != want {
		return nil, fmt.Errorf("scan qr: want %q followed by ref,noise,identity,adv,platform, or the four-part ref,noise,identity,adv; got %d parts", qrLinkPrefix, len(parts))
	}
	if want == 5 && parts[4] == "" {
		return nil, errors.New("scan qr: the link names no platform")
	}
	return parts[:4], nil
}

// completePairing plays the phone's part after it learned the ADV secret:
// it signs the new device identity, sends pair-success and, once the client
// confirms, records the device and forces the 515 restart into a login.
func (s *Server) completePairing(ctx context.Context, c *conn, info *pairInfo, advSecret []byte) error {
	s.mu.Lock()
	devID := s.acct.NextDevice
	s.acct.NextDevice++
	phone, lidUser := s.acct.Phone, s.acct.LIDUser
	for _, ref := range info.refs {
		delete(s.refs, ref)
	}
	s.mu.Unlock()
	jid := types.JID{User: phone, Server: types.DefaultUserServer, Device: devID}
	lid := types.JID{User: lidUser, Server: types.HiddenUserServer, Device: devID}

	var rawID [4]byte
	_, _ = rand.Read(rawID[:])
	details, err := proto.Marshal(&waAdv.ADVDeviceIdentity{
		RawID:     proto.Uint32(binary.BigEndian.Uint32(rawID[:])),
		Timestamp: proto.Uint64(uint64(time.Now().Unix())),
		KeyIndex:  proto.Uint32(uint32(devID)),
	})
	if err != nil {
		return fmt.Errorf("pair: marshal device identity: %w", err)
	}
	phoneKey := s.phone.dev.IdentityKey
	msg := concat([]byte{6, 0}, details, info.identityPub)
	sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*phoneKey.Priv), msg)
	signed, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentity{
		Details:             details,
		AccountSignatureKey: phoneKey.Pub[:],
		AccountSignature:    sig[:],
	})
	if err != nil {
		return fmt.Errorf("pair: marshal signed identity: %w", err)
	}
	mac := hmac.New(sha256.New, advSecret)
	mac.Write(signed)
	container, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentityHMAC{Details: signed, HMAC: mac.Sum(nil)})
	if err != nil {
		return fmt.Errorf("pair: marshal identity container: %w", err)
	}
	const platform = "android"
	resp, err := c.request(ctx, waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{
		"from": types.ServerJID, "type": "set", "id": c.newID("pair-success"), "xmlns": "md",
		// whatsmeow sets its server clock offset from it (pair.go handlePairSuccess).
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{{Tag: "pair-success", Content: []waBinary.Node{
		{Tag: "device-identity", Content: container},
		{Tag: "platform", Attrs: waBinary.Attrs{"name": platform}},
		{Tag: "device", Attrs: waBinary.Attrs{"jid": jid, "lid": lid}},
	}}}})
	if err != nil {
		return fmt.Errorf("pair: wait for confirmation: %w", err)
	}
	if t, _ := resp.Attrs["type"].(string); t != "result" {
		return fmt.Errorf("pair: client rejected pairing: %s", resp.String())
	}
	if _, ok := resp.GetOptionalChildByTag("pair-device-sign"); !ok {
		return errors.New("pair: confirmation without pair-device-sign")
	}
	s.mu.Lock()
	s.acct.Devices[devID] = &deviceRec{
		Device:       devID,
		NoisePub:     info.noisePub,
		IdentityPub:  info.identityPub,
		RegID:        info.regID,
		SignedPreKey: info.signedPre,
		Platform:     platform,
		LinkedAt:     time.Now(),
	}
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist linked device", "err", err)
	}
	s.emitLocked(Event{Kind: EventPaired, ConnID: c.id, JID: jid.String()})
	s.mu.Unlock()
	// Without the 515 the client never logs in: it treats the close after pairing as expected.
	c.sendStreamError("515", "", false)
	return nil
}

// LinkedDevices lists the JIDs of the devices linked to the bot account.
func (s *Server) LinkedDevices() []types.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]types.JID, 0, len(s.acct.Devices))
	for id := range s.acct.Devices {
		out = append(out, types.JID{User: s.acct.Phone, Server: types.DefaultUserServer, Device: id})
	}
	return out
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
