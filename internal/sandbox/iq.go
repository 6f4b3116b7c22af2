package sandbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

func (s *Server) handleNode(c *conn, n *waBinary.Node) {
	switch n.Tag {
	case "iq":
		s.handleIQ(c, n)
	case "message":
		if c.brokenBy() == FaultStuckSends {
			id, _ := n.Attrs["id"].(string)
			s.emit(Event{Kind: EventMessageStuck, ConnID: c.id, JID: c.jidString(), Detail: id})
			return
		}
		s.handleBotMessage(c, n)
	case "receipt":
		s.handleReceipt(c, n)
	case "ack":
		// Client acks need no answer; they are recorded so tests can wait for a quiet
		// client, and a notification's or a receipt's ack settles it (no
		// redelivery at the next login).
		id, _ := n.Attrs["id"].(string)
		class, _ := n.Attrs["class"].(string)
		if jid, ok := c.account(); ok && class == "notification" {
			s.settleNotification(jid.Device, id)
		} else if ok && class == "receipt" {
			s.settleReceipt(c, jid.Device, n)
		}
		s.emit(Event{Kind: EventClientAck, ConnID: c.id, JID: c.jidString(), Detail: strings.TrimSpace(class + " " + id)})
	case "presence", "chatstate":
	default:
		s.log.Info("unhandled node from client", "conn", c.id, "tag", n.Tag)
	}
}

func iqResult(req *waBinary.Node, content ...waBinary.Node) waBinary.Node {
	n := waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{
		"id": req.Attrs["id"], "type": "result", "from": types.ServerJID,
	}}
	if len(content) > 0 {
		n.Content = content
	}
	return n
}

func iqError(req *waBinary.Node, code int, text string) waBinary.Node {
	return waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{
		"id": req.Attrs["id"], "type": "error", "from": types.ServerJID,
	}, Content: []waBinary.Node{{Tag: "error", Attrs: waBinary.Attrs{"code": strconv.Itoa(code), "text": text}}}}
}

func (s *Server) handleIQ(c *conn, n *waBinary.Node) {
	ag := n.AttrGetter()
	typ := ag.OptionalString("type")
	xmlns := ag.OptionalString("xmlns")
	if typ == "result" || typ == "error" {
		if !c.deliverResponse(n) {
			s.log.Debug("unsolicited iq response", "conn", c.id, "id", n.Attrs["id"])
		}
		return
	}
	var first string
	if children := n.GetChildren(); len(children) > 0 {
		first = children[0].Tag
	}
	_, loggedIn := c.account()
	switch {
	case xmlns == "w:p":
		if s.faultActive(FaultBlackholePings) {
			s.emit(Event{Kind: EventPingDropped, ConnID: c.id, JID: c.jidString()})
			return
		}
		s.emit(Event{Kind: EventPing, ConnID: c.id, JID: c.jidString()})
		c.sendLogged(iqResult(n))
	case xmlns == "md" && first == "link_code_companion_reg":
		s.handleLinkCodeIQ(c, n)
	case !loggedIn:
		s.unknownIQ(c, n, xmlns, typ, first)
	case xmlns == "encrypt" && typ == "get" && first == "count":
		c.sendLogged(iqResult(n, waBinary.Node{Tag: "count", Attrs: waBinary.Attrs{"value": strconv.Itoa(s.preKeyCount(c))}}))
	case xmlns == "encrypt" && typ == "get" && first == "key":
		c.sendLogged(s.preKeyBundles(n))
	case xmlns == "encrypt" && typ == "set":
		s.storePreKeys(c, n)
	case xmlns == "passive":
		c.sendLogged(iqResult(n))
	case xmlns == "usync":
		c.sendLogged(s.usync(n))
	case xmlns == "md" && first == "remove-companion-device":
		s.removeCompanion(c, n)
	default:
		if resp, ok := s.accountIQ(c, n, xmlns, typ, first); ok { // login.go
			c.sendLogged(resp)
			return
		}
		s.unknownIQ(c, n, xmlns, typ, first)
	}
}

func (s *Server) unknownIQ(c *conn, n *waBinary.Node, xmlns, typ, first string) {
	detail := fmt.Sprintf("xmlns=%s type=%s child=%s", xmlns, typ, first)
	s.log.Warn("unsupported iq answered with error", "conn", c.id, "query", detail)
	s.emit(Event{Kind: EventUnknownIQ, ConnID: c.id, JID: c.jidString(), Detail: detail})
	c.sendLogged(iqError(n, 501, "feature-not-implemented"))
}

func (s *Server) deviceRecFor(c *conn) *deviceRec {
	jid, ok := c.account()
	if !ok {
		return nil
	}
	return s.acct.Devices[jid.Device]
}

func (s *Server) preKeyCount(c *conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.deviceRecFor(c); rec != nil {
		return len(rec.PreKeys)
	}
	return 0
}

func nodeBytes(n waBinary.Node) []byte {
	b, _ := n.Content.([]byte)
	return b
}

func parsePreKeyNode(n waBinary.Node) (preKeyRec, bool) {
	id := nodeBytes(n.GetChildByTag("id"))
	val := nodeBytes(n.GetChildByTag("value"))
	if len(id) != 3 || len(val) != 32 {
		return preKeyRec{}, false
	}
	rec := preKeyRec{ID: binary.BigEndian.Uint32(append([]byte{0}, id...)), Pub: val}
	if sig := nodeBytes(n.GetChildByTag("signature")); len(sig) == 64 {
		rec.Sig = sig
	}
	return rec, true
}

func (s *Server) storePreKeys(c *conn, n *waBinary.Node) {
	var uploaded []preKeyRec
	list := n.GetChildByTag("list")
	for _, k := range list.GetChildren() {
		if rec, ok := parsePreKeyNode(k); ok {
			uploaded = append(uploaded, rec)
		}
	}
	skey, skeyOK := parsePreKeyNode(n.GetChildByTag("skey"))
	identity := nodeBytes(n.GetChildByTag("identity"))
	reg := nodeBytes(n.GetChildByTag("registration"))
	s.mu.Lock()
	rec := s.deviceRecFor(c)
	if rec == nil {
		s.mu.Unlock()
		c.sendLogged(iqError(n, 401, "not-authorized"))
		return
	}
	known := make(map[uint32]bool, len(rec.PreKeys))
	for _, k := range rec.PreKeys {
		known[k.ID] = true
	}
	for _, k := range uploaded {
		if !known[k.ID] {
			rec.PreKeys = append(rec.PreKeys, k)
			known[k.ID] = true
		}
	}
	if skeyOK && skey.Sig != nil {
		rec.SignedPreKey = skey
	}
	if len(identity) == 32 {
		rec.IdentityPub = identity
	}
	if len(reg) == 4 {
		rec.RegID = binary.BigEndian.Uint32(reg)
	}
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist prekeys", "err", err)
	}
	s.emitLocked(Event{Kind: EventPreKeysUploaded, ConnID: c.id, JID: c.jidString(), Detail: strconv.Itoa(len(uploaded))})
	s.mu.Unlock()
	c.sendLogged(iqResult(n))
}

// bundleNodes is the prekey bundle format of prekeys.go:nodeToPreKeyBundle.
func bundleNodes(regID uint32, identity []byte, skey preKeyRec, otk *preKeyRec) []waBinary.Node {
	var reg [4]byte
	binary.BigEndian.PutUint32(reg[:], regID)
	id3 := func(id uint32) []byte {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], id)
		return b[1:]
	}
	out := []waBinary.Node{
		{Tag: "registration", Content: reg[:]},
		{Tag: "type", Content: []byte{5}},
		{Tag: "identity", Content: identity},
		{Tag: "skey", Content: []waBinary.Node{
			{Tag: "id", Content: id3(skey.ID)},
			{Tag: "value", Content: skey.Pub},
			{Tag: "signature", Content: skey.Sig},
		}},
	}
	if otk != nil {
		out = append(out, waBinary.Node{Tag: "key", Content: []waBinary.Node{
			{Tag: "id", Content: id3(otk.ID)},
			{Tag: "value", Content: otk.Pub},
		}})
	}
	return out
}

func (s *Server) preKeyBundles(n *waBinary.Node) waBinary.Node {
	var users []waBinary.Node
	keyReq := n.GetChildByTag("key")
	for _, u := range keyReq.GetChildren() {
		jid, ok := u.Attrs["jid"].(types.JID)
		if !ok || u.Tag != "user" {
			continue
		}
		s.emit(Event{Kind: EventPreKeyFetched, JID: jid.String()})
		content, err := s.bundleFor(s.ctx, jid)
		if err != nil {
			s.log.Debug("no prekey bundle", "jid", jid, "err", err)
			content = []waBinary.Node{{Tag: "error", Attrs: waBinary.Attrs{"code": "404", "text": "item-not-found"}}}
		}
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: content})
	}
	return iqResult(n, waBinary.Node{Tag: "list", Content: users})
}

// bundleFor serves the bundle of a linked device (from its uploads, consuming
// a one-time key), of the phone, or of a contact (fresh one-time key).
func (s *Server) bundleFor(ctx context.Context, jid types.JID) ([]waBinary.Node, error) {
	s.mu.Lock()
	isAccount, contact := s.resolveLocked(jid)
	if isAccount && jid.Device != 0 {
		defer s.mu.Unlock()
		rec := s.acct.Devices[jid.Device]
		if rec == nil {
			return nil, fmt.Errorf("device %s not linked", jid)
		}
		otk := s.takePreKeyLocked(rec)
		return bundleNodes(rec.RegID, rec.IdentityPub, rec.SignedPreKey, otk), nil
	}
	s.mu.Unlock()
	var dev = s.phone.dev
	switch {
	case isAccount:
	case contact != nil && jid.Device == 0:
		dev = contact.signalDevice()
	default:
		return nil, fmt.Errorf("no such user %s", jid)
	}
	otk, err := dev.PreKeys.GenOnePreKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("generate one-time prekey: %w", err)
	}
	skey := preKeyRec{ID: dev.SignedPreKey.KeyID, Pub: dev.SignedPreKey.Pub[:], Sig: dev.SignedPreKey.Signature[:]}
	return bundleNodes(dev.RegistrationID, dev.IdentityKey.Pub[:], skey, &preKeyRec{ID: otk.KeyID, Pub: otk.Pub[:]}), nil
}

// takePreKeyLocked consumes the oldest uploaded one-time prekey; s.mu must be held.
func (s *Server) takePreKeyLocked(rec *deviceRec) *preKeyRec {
	if len(rec.PreKeys) == 0 {
		return nil
	}
	k := rec.PreKeys[0]
	rec.PreKeys = rec.PreKeys[1:]
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist prekey consumption", "err", err)
	}
	if left := len(rec.PreKeys); left < lowPreKeyCount {
		// Like WhatsApp, tell the device to top up its one-time prekeys.
		notif := waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
			"from": types.ServerJID, "type": "encrypt", "id": newMessageID(),
			"t": strconv.FormatInt(time.Now().Unix(), 10),
		}, Content: []waBinary.Node{{Tag: "count", Attrs: waBinary.Attrs{"value": strconv.Itoa(left)}}}}
		for _, c := range s.liveConnsLocked(rec.Device) {
			go c.sendLogged(notif)
		}
	}
	return &k
}

// lowPreKeyCount is whatsmeow's MinPreKeyCount: below it the client uploads more.
const lowPreKeyCount = 5

// removeCompanion handles the client's own logout (cli.Logout): the device is unlinked.
func (s *Server) removeCompanion(c *conn, n *waBinary.Node) {
	req := n.GetChildByTag("remove-companion-device")
	jid, _ := req.Attrs["jid"].(types.JID)
	reason, _ := req.Attrs["reason"].(string)
	s.mu.Lock()
	if jid.User != s.acct.Phone || s.acct.Devices[jid.Device] == nil {
		s.mu.Unlock()
		c.sendLogged(iqError(n, 404, "item-not-found"))
		return
	}
	delete(s.acct.Devices, jid.Device)
	delete(s.pending, jid.Device)
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist device removal", "err", err)
	}
	s.emitLocked(Event{Kind: EventDeviceLoggedOut, ConnID: c.id, JID: jid.String(), Detail: "remove-companion-device " + reason})
	s.mu.Unlock()
	c.sendLogged(iqResult(n))
}

func (s *Server) usync(n *waBinary.Node) waBinary.Node {
	query := n.GetChildByTag("usync", "query")
	list := n.GetChildByTag("usync", "list")
	var asked []string
	for _, q := range query.GetChildren() {
		asked = append(asked, q.Tag)
	}
	protocols := strings.Join(asked, " ")
	var users []waBinary.Node
	seen := map[types.JID]bool{}
	for _, u := range list.GetChildren() {
		if u.Tag != "user" {
			continue
		}
		jid, ok := u.Attrs["jid"].(types.JID)
		var contactQuery string
		if c, has := u.GetOptionalChildByTag("contact"); has {
			contactQuery, _ = c.Content.(string)
			if contactQuery == "" {
				contactQuery = string(nodeBytes(c))
			}
		}
		if !ok {
			number := strings.TrimPrefix(contactQuery, "+")
			number = strings.TrimSuffix(number, "@c.us")
			jid = types.NewJID(number, types.DefaultUserServer)
		}
		jid = jid.ToNonAD()
		if seen[jid] {
			// One answer per user: whatsmeow lists a note-to-self recipient twice
			// (send.go sendDM asks for the chat and its own account).
			continue
		}
		seen[jid] = true
		s.emit(Event{Kind: EventUserQueried, JID: jid.String(), Detail: protocols})
		devices, known := s.userDevices(jid)
		var parts []waBinary.Node
		for _, q := range query.GetChildren() {
			switch q.Tag {
			case "devices":
				var list []waBinary.Node
				for _, d := range devices {
					attrs := waBinary.Attrs{"id": strconv.Itoa(int(d))}
					if d != 0 {
						// A companion's key index is the one the phone signed at pairing (ADVDeviceIdentity.KeyIndex).
						attrs["key-index"] = strconv.Itoa(int(d))
					}
					list = append(list, waBinary.Node{Tag: "device", Attrs: attrs})
				}
				parts = append(parts, waBinary.Node{Tag: "devices", Content: []waBinary.Node{{Tag: "device-list", Content: list}}})
			case "contact":
				typ := "out"
				if known {
					typ = "in"
				}
				c := waBinary.Node{Tag: "contact", Attrs: waBinary.Attrs{"type": typ}}
				if contactQuery != "" {
					c.Content = []byte(contactQuery)
				}
				parts = append(parts, c)
			case "lid":
				if lid, ok := s.lidFor(jid); ok {
					parts = append(parts, waBinary.Node{Tag: "lid", Attrs: waBinary.Attrs{"val": lid}})
				}
			}
		}
		users = append(users, waBinary.Node{Tag: "user", Attrs: s.usyncUserAttrs(jid, query), Content: parts})
	}
	usyncAttrs := waBinary.Attrs{}
	for k, v := range n.GetChildByTag("usync").Attrs {
		usyncAttrs[k] = v
	}
	return iqResult(n, waBinary.Node{Tag: "usync", Attrs: usyncAttrs, Content: []waBinary.Node{
		{Tag: "result"},
		{Tag: "list", Content: users},
	}})
}

// usyncUserAttrs names a user in a usync answer. A contact query in LID
// addressing mode (whatsmeow user.go IsOnWhatsApp) is answered with the
// user's LID as jid and the phone number as pn_jid; otherwise, and for a
// number without a LID, the user is named as asked.
func (s *Server) usyncUserAttrs(jid types.JID, query waBinary.Node) waBinary.Attrs {
	attrs := waBinary.Attrs{"jid": jid}
	c, ok := query.GetOptionalChildByTag("contact")
	if mode, _ := c.Attrs["addressing_mode"].(string); !ok || mode != "lid" || jid.Server != types.DefaultUserServer {
		return attrs
	}
	if lid, ok := s.lidFor(jid); ok {
		attrs["jid"], attrs["pn_jid"] = lid, jid
	}
	return attrs
}

// userDevices lists the device ids of a user (PN or LID): the phone plus linked
// devices for the bot account, device 0 for a contact.
func (s *Server) userDevices(jid types.JID) ([]uint16, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	isAccount, ct := s.resolveLocked(jid)
	switch {
	case isAccount:
		out := []uint16{0}
		for id := range s.acct.Devices {
			out = append(out, id)
		}
		slices.Sort(out)
		return out, true
	case ct != nil:
		return []uint16{0}, true
	}
	return nil, false
}

func (s *Server) lidFor(jid types.JID) (types.JID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	isAccount, ct := s.resolveLocked(jid)
	switch {
	case isAccount:
		return types.NewJID(s.acct.LIDUser, types.HiddenUserServer), true
	case ct != nil && ct.lid != "":
		return ct.lidLocked(), true
	}
	return types.JID{}, false
}
