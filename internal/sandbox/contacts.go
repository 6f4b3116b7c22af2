package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/libsignal/util/optional"
	"google.golang.org/protobuf/proto"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
)

// InboxMessage is a message a contact received from the bot and decrypted.
type InboxMessage struct {
	ID   string    `json:"id"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
	// From is the sending device of the bot account.
	From string `json:"from"`
	// Type is the Signal envelope: pkmsg or msg.
	Type string `json:"type"`
	// To is the chat of a copy the bot sent to its own phone (DeviceSentMessage); empty for contacts.
	To string `json:"to,omitempty"`
	// Read is when the contact read it (Contact.Read, ContactSettings.ReadAfter); zero while unread.
	Read time.Time `json:"read,omitzero"`
	// addr is the address the bot wrote to (PN or LID): the contact's receipts come from it.
	addr types.JID
}

// Receipt is a receipt the bot sent for a message of a contact.
type Receipt struct {
	ID   string    `json:"id"`
	Type string    `json:"type"` // "" for delivery, "read", "inactive", ...
	From string    `json:"from"`
	Time time.Time `json:"time"`
}

// SentMessage is a message a contact sent to the bot.
type SentMessage struct {
	ID   string    `json:"id"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

// Contact is a simulated WhatsApp user with a real Signal identity.
type Contact struct {
	s      *Server
	number string
	lid    string // LID user part; empty while addressed by phone number (Options.PhoneNumberContacts)
	dev    *store.Device

	// deliverMu orders the hand-over of the bot's messages to the contact
	// (contactsettings.go): what the server kept while the contact was
	// offline is decrypted before anything that comes after. It is taken
	// before cryptoMu and mu.
	deliverMu sync.Mutex
	// cryptoMu serialises Signal operations, which are not safe
	// concurrently; it guards dev, which Reinstall replaces.
	cryptoMu sync.Mutex
	copies   decryptedCopies // guarded by cryptoMu
	mu       sync.Mutex
	inbox    []InboxMessage
	receipts []Receipt
	sent     []SentMessage
	settings ContactSettings // guarded by mu
	// kept are the bot's messages the server keeps while the contact is offline, oldest first.
	kept []botCopy // guarded by mu
	// heldReads are the read receipts of an offline contact, sent when it is back.
	heldReads []waBinary.Node // guarded by mu
	// retried are the bot's messages the contact could not decrypt and asked for again.
	retried map[string]bool // guarded by mu
}

// pendingMsg is what a bot device has not acknowledged yet: a message (settled
// by the device's receipt), a notification or a receipt (settled by its ack).
type pendingMsg struct {
	id   string
	node waBinary.Node
}

var numberRE = regexp.MustCompile(`^[1-9][0-9]{6,15}$`)

// Number is the contact's phone number.
func (ct *Contact) Number() string { return ct.number }

// JID is the contact's phone-number JID.
func (ct *Contact) JID() types.JID { return types.NewJID(ct.number, types.DefaultUserServer) }

// LID is the contact's LID JID; empty while the contact is addressed by
// phone number (Options.PhoneNumberContacts, before MigrateContact).
func (ct *Contact) LID() types.JID {
	ct.s.mu.Lock()
	defer ct.s.mu.Unlock()
	return ct.lidLocked()
}

// lidLocked is LID for callers holding s.mu.
func (ct *Contact) lidLocked() types.JID {
	if ct.lid == "" {
		return types.EmptyJID
	}
	return types.NewJID(ct.lid, types.HiddenUserServer)
}

// Address is where the contact writes from and what the server calls it in
// notifications: its LID once it has one, else its phone number.
func (ct *Contact) Address() types.JID {
	if lid := ct.LID(); !lid.IsEmpty() {
		return lid
	}
	return ct.JID()
}

// lidUserFor derives a stable LID for a number so it needs no persistence.
func lidUserFor(number string) string {
	sum := sha256.Sum256([]byte("sandbox-lid:" + number))
	digits := make([]byte, 15)
	digits[0] = '2'
	for i := 1; i < len(digits); i++ {
		digits[i] = '0' + sum[i]%10
	}
	return string(digits)
}

// Inbox returns the messages the contact received, in arrival order, duplicates included.
func (ct *Contact) Inbox() []InboxMessage {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return append([]InboxMessage(nil), ct.inbox...)
}

// Receipts returns the receipts the bot sent for this contact's messages, in arrival order.
func (ct *Contact) Receipts() []Receipt {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return append([]Receipt(nil), ct.receipts...)
}

// Sent returns the messages this contact sent to the bot.
func (ct *Contact) Sent() []SentMessage {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return append([]SentMessage(nil), ct.sent...)
}

// AddContact creates (or returns the existing) simulated user with this phone number.
// It has a LID unless Options.PhoneNumberContacts is set.
func (s *Server) AddContact(number string) (*Contact, error) {
	return s.addContact(s.ctx, number, true, "")
}

// AddPhoneNumberContact creates (or returns the existing) simulated user
// addressed by phone number only, as users were before WhatsApp moved them
// to LIDs, whatever Options.PhoneNumberContacts says; MigrateContact gives
// it its LID.
func (s *Server) AddPhoneNumberContact(number string) (*Contact, error) {
	return s.addContact(s.ctx, number, true, addressingPN)
}

// How a contact is addressed, as persisted.
const (
	addressingLID = "lid"
	addressingPN  = "pn"
)

// addContact creates a contact, addressed as addressing says ("" for the
// server's default).
func (s *Server) addContact(ctx context.Context, number string, persist bool, addressing string) (*Contact, error) {
	number = strings.TrimPrefix(strings.TrimSpace(number), "+")
	if !numberRE.MatchString(number) {
		return nil, fmt.Errorf("add contact: %q is not an international phone number", number)
	}
	if number == s.opts.PhoneNumber {
		return nil, errors.New("add contact: that is the bot account's own number")
	}
	s.mu.Lock()
	if ct, ok := s.contacts[number]; ok {
		s.mu.Unlock()
		return ct, nil
	}
	s.mu.Unlock()
	dev, err := s.signal.device(ctx, types.NewJID(number, types.DefaultUserServer))
	if err != nil {
		return nil, fmt.Errorf("add contact: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ct, ok := s.contacts[number]; ok {
		return ct, nil
	}
	ct := &Contact{s: s, number: number, dev: dev, settings: s.defaultContactSettings()}
	if addressing == "" && !s.opts.PhoneNumberContacts || addressing == addressingLID {
		s.giveLIDLocked(ct)
	}
	s.contacts[number] = ct
	if persist {
		if err := s.saveLocked(); err != nil {
			s.log.Error("persist contact", "err", err)
		}
	}
	s.emitLocked(Event{Kind: EventContactAdded, JID: ct.JID().String()})
	return ct, nil
}

// giveLIDLocked assigns the contact its LID; s.mu must be held.
func (s *Server) giveLIDLocked(ct *Contact) {
	ct.lid = lidUserFor(ct.number)
	s.lidUsers[ct.lid] = ct
}

// PhoneInbox returns what the account's phone decrypted: the copies of everything
// the bot sent, including messages to its own number, with To set to the chat.
func (s *Server) PhoneInbox() []InboxMessage {
	return s.phone.Inbox()
}

// resolveLocked maps a PN or LID JID to the bot account or a contact; s.mu must be held.
func (s *Server) resolveLocked(jid types.JID) (isAccount bool, ct *Contact) {
	switch jid.Server {
	case types.DefaultUserServer:
		if jid.User == s.acct.Phone {
			return true, nil
		}
		return false, s.contacts[jid.User]
	case types.HiddenUserServer:
		if jid.User == s.acct.LIDUser {
			return true, nil
		}
		return false, s.lidUsers[jid.User]
	}
	return false, nil
}

func (s *Server) resolve(jid types.JID) (bool, *Contact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveLocked(jid)
}

// Contact returns the simulated user with this number, or nil.
func (s *Server) Contact(number string) *Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contacts[strings.TrimPrefix(number, "+")]
}

// Contacts lists the simulated users' numbers.
func (s *Server) Contacts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.contacts))
	for n := range s.contacts {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func newMessageID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b))
}

// pad appends 1-15 bytes of padding, each holding the padding length, as whatsmeow does.
func pad(plain []byte) []byte {
	var b [1]byte
	_, _ = rand.Read(b[:])
	n := int(b[0]&0x0f) + 1
	if n > 15 {
		n = 15
	}
	out := append([]byte(nil), plain...)
	for range n {
		out = append(out, byte(n))
	}
	return out
}

func unpad(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, errors.New("unpad: empty plaintext")
	}
	n := int(plain[len(plain)-1])
	if n == 0 || n > len(plain) {
		return nil, errors.New("unpad: bad padding")
	}
	return plain[:len(plain)-n], nil
}

// Send encrypts a text message from the contact to every linked device of the bot
// and delivers it now or, for offline devices, at their next login. It returns the message ID.
func (ct *Contact) Send(ctx context.Context, text string) (string, error) {
	s := ct.s
	plain, err := proto.Marshal(&waE2E.Message{Conversation: proto.String(text)})
	if err != nil {
		return "", fmt.Errorf("contact send: marshal: %w", err)
	}
	s.mu.Lock()
	var devices []uint16
	for id := range s.acct.Devices {
		devices = append(devices, id)
	}
	phone := s.acct.Phone
	s.mu.Unlock()
	slices.Sort(devices)
	if len(devices) == 0 {
		return "", errors.New("contact send: the bot account has no linked device")
	}
	id := newMessageID()
	now := time.Now()
	spoil := s.takeUndecryptable()
	ct.cryptoMu.Lock()
	defer ct.cryptoMu.Unlock()
	type out struct {
		dev  uint16
		node waBinary.Node
	}
	var outs []out
	for _, d := range devices {
		to := types.JID{User: phone, Server: types.DefaultUserServer, Device: d}
		encType, ciphertext, err := ct.encrypt(ctx, to, pad(plain))
		if err == nil && spoil {
			ciphertext, err = spoilMAC(encType, ciphertext)
		}
		if err != nil {
			return "", fmt.Errorf("contact send to %s: %w", to, err)
		}
		attrs := waBinary.Attrs{
			"id": id, "from": ct.JID(), "type": "text", "t": strconv.FormatInt(now.Unix(), 10), "notify": pushNameOf(ct),
		}
		if lid := ct.LID(); !lid.IsEmpty() {
			attrs["from"], attrs["sender_pn"] = lid, ct.JID()
		}
		outs = append(outs, out{d, waBinary.Node{Tag: "message", Attrs: attrs, Content: []waBinary.Node{{Tag: "enc", Attrs: waBinary.Attrs{"v": "2", "type": encType}, Content: ciphertext}}}})
	}
	ct.mu.Lock()
	ct.sent = append(ct.sent, SentMessage{ID: id, Text: text, Time: now})
	ct.mu.Unlock()
	s.emit(Event{Kind: EventMessageToBot, JID: ct.JID().String(), Detail: id})
	if spoil {
		s.emit(Event{Kind: EventUndecryptableSent, JID: ct.JID().String(), Detail: id})
	}
	for _, o := range outs {
		s.deliver(o.dev, pendingMsg{id: id, node: o.node})
	}
	return id, nil
}

// encrypt seals plaintext for one bot device, starting a session from its uploaded prekeys if needed.
func (ct *Contact) encrypt(ctx context.Context, to types.JID, padded []byte) (string, []byte, error) {
	addr := to.SignalAddress()
	builder := session.NewBuilderFromSignal(ct.dev, addr, store.SignalProtobufSerializer)
	has, err := ct.dev.ContainsSession(ctx, addr)
	if err != nil {
		return "", nil, fmt.Errorf("check session: %w", err)
	}
	if !has {
		bundle, err := ct.s.deviceBundle(to.Device)
		if err != nil {
			return "", nil, err
		}
		err = builder.ProcessBundle(ctx, bundle)
		if errors.Is(err, signalerror.ErrUntrustedIdentity) {
			// The device was re-linked with a new identity: trust the new one as a phone would after a warning.
			if err = ct.dev.Identities.DeleteIdentity(ctx, addr.String()); err == nil {
				err = builder.ProcessBundle(ctx, bundle)
			}
		}
		if err != nil {
			return "", nil, fmt.Errorf("process bundle: %w", err)
		}
	}
	msg, err := session.NewCipher(builder, addr).Encrypt(ctx, padded)
	if err != nil {
		return "", nil, fmt.Errorf("encrypt: %w", err)
	}
	typ := "msg"
	if msg.Type() == protocol.PREKEY_TYPE {
		typ = "pkmsg"
	}
	return typ, msg.Serialize(), nil
}

// deviceBundle builds a libsignal bundle for a linked device from what it uploaded.
func (s *Server) deviceBundle(devID uint16) (*prekey.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.acct.Devices[devID]
	if rec == nil || len(rec.IdentityPub) != 32 || len(rec.SignedPreKey.Pub) != 32 || len(rec.SignedPreKey.Sig) != 64 {
		return nil, fmt.Errorf("device %d has no usable keys", devID)
	}
	ik := identity.NewKey(ecc.NewDjbECPublicKey([32]byte(rec.IdentityPub)))
	spk := ecc.NewDjbECPublicKey([32]byte(rec.SignedPreKey.Pub))
	sig := [64]byte(rec.SignedPreKey.Sig)
	otk := s.takePreKeyLocked(rec)
	if otk == nil {
		return prekey.NewBundle(rec.RegID, uint32(devID), optional.NewEmptyUint32(), rec.SignedPreKey.ID,
			nil, spk, sig, ik), nil
	}
	return prekey.NewBundle(rec.RegID, uint32(devID), optional.NewOptionalUint32(otk.ID), rec.SignedPreKey.ID,
		ecc.NewDjbECPublicKey([32]byte(otk.Pub)), spk, sig, ik), nil
}

// deliver queues a message for a bot device and sends it on its live connections.
func (s *Server) deliver(devID uint16, m pendingMsg) {
	s.mu.Lock()
	s.pending[devID] = append(s.pending[devID], m)
	targets := s.liveConnsLocked(devID)
	s.mu.Unlock()
	kind, detail := pushedEvent(m)
	for _, c := range targets {
		if err := c.send(m.node); err == nil {
			s.emit(Event{Kind: kind, ConnID: c.id, JID: c.jidString(), Detail: detail})
		}
	}
}

func (s *Server) liveConnsLocked(devID uint16) []*conn {
	var out []*conn
	for _, c := range s.connList() {
		if jid, ok := c.account(); ok && jid.User == s.acct.Phone && jid.Device == devID {
			out = append(out, c)
		}
	}
	return out
}

// flushPending resends everything the device has not acknowledged yet
// (messages, notifications, receipts), oldest first.
func (s *Server) flushPending(c *conn, devID uint16) {
	s.mu.Lock()
	msgs := append([]pendingMsg(nil), s.pending[devID]...)
	s.mu.Unlock()
	for _, m := range msgs {
		if err := c.send(m.node); err != nil {
			return
		}
		kind, detail := pushedEvent(m)
		s.emit(Event{Kind: kind, ConnID: c.id, JID: c.jidString(), Detail: detail})
	}
}

// handleBotMessage lets each addressed contact decrypt a message from the bot, then acks it.
func (s *Server) handleBotMessage(c *conn, n *waBinary.Node) {
	from, ok := c.account()
	if !ok {
		return
	}
	ag := n.AttrGetter()
	id := ag.OptionalString("id")
	to, _ := n.Attrs["to"].(types.JID)
	type target struct {
		jid types.JID
		enc waBinary.Node
	}
	var targets []target
	for _, p := range n.GetChildrenByTag("participants") {
		for _, t := range p.GetChildrenByTag("to") {
			jid, _ := t.Attrs["jid"].(types.JID)
			for _, enc := range t.GetChildrenByTag("enc") {
				targets = append(targets, target{jid, enc})
			}
		}
	}
	for _, enc := range n.GetChildrenByTag("enc") {
		targets = append(targets, target{to, enc})
	}
	s.emit(Event{Kind: EventMessageFromBot, ConnID: c.id, JID: from.String(), Detail: id})
	if isAccount, ct := s.resolve(to); !isAccount && s.reachoutRefused(ct) {
		s.refuseReachout(c, id, to)
		return
	}
	type handed struct {
		ct *Contact
		cp botCopy
	}
	var delivered, again []handed
	var phoneRequests []*waE2E.PeerDataOperationRequestMessage
	for _, t := range targets {
		isAccount, ct := s.resolve(t.jid)
		if isAccount {
			ct = s.phone
		}
		if ct == nil || t.jid.Device != 0 {
			// Copies for other companion devices of the account are not simulated.
			continue
		}
		if why := s.droppedByAddress(t.jid, ct); why != "" {
			s.emit(Event{Kind: EventUndeliverable, ConnID: c.id, JID: t.jid.String(), Detail: id + ": " + why})
			continue
		}
		// The receipts come from the address the bot wrote to (PN or LID).
		cp := botCopy{id: id, sender: from, to: t.jid.ToNonAD(), enc: t.enc, connID: c.id}
		if ct == s.phone {
			if msg, ok, _ := s.decryptCopy(ct, cp); ok {
				if req := placeholderRequest(msg); req != nil {
					phoneRequests = append(phoneRequests, req)
				}
			}
			continue
		}
		ok, retry := s.handOver(ct, cp)
		if ok {
			delivered = append(delivered, handed{ct, cp})
		}
		if retry {
			again = append(again, handed{ct, cp})
		}
	}
	ack := waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{
		"class": "message", "id": id, "t": strconv.FormatInt(time.Now().Unix(), 10),
	}}
	if !to.IsEmpty() {
		ack.Attrs["from"] = to
	}
	if !s.holdAck(c, ack) {
		c.sendLogged(ack)
	}
	// The recipient's receipts, and its requests for a copy it could not
	// decrypt, come after the server's ack but do not wait for it: a
	// withheld ack holds back nothing else (receipts.go).
	for _, d := range delivered {
		s.delivered(d.ct, []botCopy{d.cp})
	}
	for _, a := range again {
		s.askAgain(a.ct, a.cp)
	}
	// The phone answers a request it got, as a message of its own, after the
	// server's ack if there is one: a server that withholds its ack has
	// still handed the phone its copy.
	for _, req := range phoneRequests {
		s.answerPlaceholderResend(s.ctx, from, id, req)
	}
}

// errNoSession is a Signal message from a device the contact has no session with.
var errNoSession = errors.New("no session with the sender")

// receive decrypts one enc node from a bot device, written to the
// contact's address to, records it in the inbox and returns it.
func (ct *Contact) receive(ctx context.Context, sender types.JID, id string, to types.JID, enc waBinary.Node) (*waE2E.Message, error) {
	ciphertext := nodeBytes(enc)
	encType, _ := enc.Attrs["type"].(string)
	addr := sender.SignalAddress()
	ct.cryptoMu.Lock()
	defer ct.cryptoMu.Unlock()
	builder := session.NewBuilderFromSignal(ct.dev, addr, store.SignalProtobufSerializer)
	cipher := session.NewCipher(builder, addr)
	var plain []byte
	var err error
	switch encType {
	case "pkmsg":
		var msg *protocol.PreKeySignalMessage
		msg, err = protocol.NewPreKeySignalMessageFromBytes(ciphertext, store.SignalProtobufSerializer.PreKeySignalMessage, store.SignalProtobufSerializer.SignalMessage)
		if err != nil {
			return nil, fmt.Errorf("parse pkmsg: %w", err)
		}
		plain, err = cipher.DecryptMessage(ctx, msg)
		if errors.Is(err, signalerror.ErrUntrustedIdentity) {
			if err = ct.dev.Identities.DeleteIdentity(ctx, addr.String()); err == nil {
				plain, err = cipher.DecryptMessage(ctx, msg)
			}
		}
	case "msg":
		if has, herr := ct.dev.ContainsSession(ctx, addr); herr == nil && !has {
			return nil, fmt.Errorf("decrypt msg: %w", errNoSession)
		}
		var msg *protocol.SignalMessage
		msg, err = protocol.NewSignalMessageFromBytes(ciphertext, store.SignalProtobufSerializer.SignalMessage)
		if err != nil {
			return nil, fmt.Errorf("parse msg: %w", err)
		}
		plain, err = cipher.Decrypt(ctx, msg)
	default:
		return nil, fmt.Errorf("unsupported enc type %q", encType)
	}
	if err != nil {
		if ct.copies.seen(addr.String(), ciphertext) {
			return nil, fmt.Errorf("decrypt %s: %w", encType, errDuplicateCopy)
		}
		return nil, fmt.Errorf("decrypt %s: %w", encType, err)
	}
	ct.copies.add(addr.String(), ciphertext)
	plain, err = unpad(plain)
	if err != nil {
		return nil, err
	}
	var m waE2E.Message
	if err := proto.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("unmarshal message: %w", err)
	}
	var dest string
	inner := &m
	if dsm := m.GetDeviceSentMessage(); dsm != nil {
		dest = dsm.GetDestinationJID()
		inner = dsm.GetMessage()
	}
	text := inner.GetConversation()
	if text == "" {
		text = inner.GetExtendedTextMessage().GetText()
	}
	ct.mu.Lock()
	ct.inbox = append(ct.inbox, InboxMessage{ID: id, Text: text, Time: time.Now(), From: sender.String(), Type: encType, To: dest, addr: to})
	ct.mu.Unlock()
	ct.s.notify()
	return &m, nil
}

// handleReceipt records receipts the bot sends for contacts' messages and settles pending deliveries.
func (s *Server) handleReceipt(c *conn, n *waBinary.Node) {
	from, ok := c.account()
	ag := n.AttrGetter()
	id := ag.OptionalString("id")
	typ := ag.OptionalString("type")
	to, _ := n.Attrs["to"].(types.JID)
	ids := []string{id}
	list := n.GetChildByTag("list")
	for _, item := range list.GetChildren() {
		if iid, _ := item.Attrs["id"].(string); iid != "" {
			ids = append(ids, iid)
		}
	}
	ackAttrs := waBinary.Attrs{"class": "receipt", "id": id}
	if !to.IsEmpty() {
		ackAttrs["from"] = to
	}
	if typ != "" {
		ackAttrs["type"] = typ
	}
	c.sendLogged(waBinary.Node{Tag: "ack", Attrs: ackAttrs})
	if !ok {
		return
	}
	if _, ct := s.resolve(to); ct != nil {
		now := time.Now()
		ct.mu.Lock()
		for _, rid := range ids {
			ct.receipts = append(ct.receipts, Receipt{ID: rid, Type: typ, From: from.String(), Time: now})
		}
		ct.mu.Unlock()
	}
	if typ != "retry" {
		s.mu.Lock()
		settled := make(map[string]bool, len(ids))
		for _, rid := range ids {
			settled[rid] = true
		}
		kept := s.pending[from.Device][:0]
		for _, m := range s.pending[from.Device] {
			if m.node.Tag != "message" || !settled[m.id] {
				kept = append(kept, m)
			}
		}
		s.pending[from.Device] = kept
		s.mu.Unlock()
	}
	s.emit(Event{Kind: EventReceipt, ConnID: c.id, JID: from.String(), Detail: strings.TrimSpace(id + " " + typ)})
}

// RequestRetry makes the contact behave like a phone that lost its Signal
// session with the bot (a reinstall, a restored backup) and could not read
// message id: it forgets the session with the bot device that sent it and
// sends that device a retry receipt carrying a fresh prekey bundle, as
// WhatsApp clients do. The bot answers by encrypting the message again under
// the same ID, which a bot that has restarted can do only if it kept the
// message. It fails when the contact never received id or the device is offline.
func (ct *Contact) RequestRetry(ctx context.Context, id string) error {
	var sender types.JID
	for _, m := range ct.Inbox() {
		if m.ID == id {
			sender, _ = types.ParseJID(m.From)
		}
	}
	if sender.IsEmpty() {
		return fmt.Errorf("request retry: contact %s never received message %s", ct.number, id)
	}
	return ct.sendRetry(ctx, sender, id, true)
}

// sendRetry sends the bot device sender a retry receipt for message id with
// a fresh prekey bundle, forgetting the session with it first if forget.
func (ct *Contact) sendRetry(ctx context.Context, sender types.JID, id string, forget bool) error {
	ct.cryptoMu.Lock()
	dev := ct.dev
	var err error
	if forget {
		err = dev.Sessions.DeleteSession(ctx, sender.SignalAddress().String())
	}
	var otk *keys.PreKey
	if err == nil {
		otk, err = dev.PreKeys.GenOnePreKey(ctx)
	}
	ct.cryptoMu.Unlock()
	if err != nil {
		return fmt.Errorf("request retry: %w", err)
	}
	skey := preKeyRec{ID: dev.SignedPreKey.KeyID, Pub: dev.SignedPreKey.Pub[:], Sig: dev.SignedPreKey.Signature[:]}
	bundle := bundleNodes(dev.RegistrationID, dev.IdentityKey.Pub[:], skey, &preKeyRec{ID: otk.KeyID, Pub: otk.Pub[:]})
	now := strconv.FormatInt(time.Now().Unix(), 10)
	from := ct.Address()
	receipt := waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{"id": id, "type": "retry", "from": from, "t": now}, Content: []waBinary.Node{
		{Tag: "retry", Attrs: waBinary.Attrs{"count": "1", "id": id, "t": now, "v": "1"}},
		bundle[0], // registration
		{Tag: "keys", Content: bundle[1:]},
	}}
	s := ct.s
	s.mu.Lock()
	conns := s.liveConnsLocked(sender.Device)
	s.mu.Unlock()
	sent := false
	for _, c := range conns {
		sent = c.send(receipt) == nil || sent
	}
	if !sent {
		return fmt.Errorf("request retry: bot device %s is not connected", sender)
	}
	s.emit(Event{Kind: EventRetryRequested, JID: ct.JID().String(), Detail: id})
	return nil
}
