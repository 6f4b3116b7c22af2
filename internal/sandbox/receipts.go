package sandbox

// The receipts the bot's account gets for its own messages, as WhatsApp
// hands them over:
//
//   - The recipient's phone sends a delivery receipt (<receipt id from t>)
//     once it has decrypted a message, and a read receipt (type="read")
//     when its user opens the chat, unless its privacy settings keep read
//     receipts off. Messages read at once are one receipt: the first ID in
//     id, the others in <list><item id=.../></list> (whatsmeow receipt.go
//     parseReceipt reads them into events.Receipt.MessageIDs; its MarkRead
//     writes the same shape).
//   - The server hands every receipt to each companion device of the
//     sender's account, not only to the device that sent the message, and
//     keeps it for each until that device acks it with <ack class="receipt"
//     id to type> (whatsmeow receipt.go sendAck: to is the receipt's from,
//     type only when the receipt has one; with SynchronousAck the ack comes
//     after the client's handlers ran). A device that is offline gets them
//     at its next login, in order, with its other waiting stanzas and
//     before the end-of-backlog marker; a receipt sent on a connection that
//     ended before its ack, or withheld by a deaf one (FaultDeaf), is sent
//     again on the next connection.
//   - Receipts come from the recipient, not from the server: a server that
//     withholds its ack to the sender (FaultWithholdAcks) still passes the
//     recipient's receipts on.

import (
	"slices"
	"strconv"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// receiptRead is the type of a read receipt.
const receiptRead = "read"

// receiptNode is the receipt a contact's phone sends for the bot's messages
// ids, all written to addr; typ is "" for delivery.
func receiptNode(addr types.JID, typ string, ids []string, at time.Time) waBinary.Node {
	n := waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{
		"id": ids[0], "from": addr, "t": strconv.FormatInt(at.Unix(), 10),
	}}
	if typ != "" {
		n.Attrs["type"] = typ
	}
	if len(ids) > 1 {
		items := make([]waBinary.Node, 0, len(ids)-1)
		for _, id := range ids[1:] {
			items = append(items, waBinary.Node{Tag: "item", Attrs: waBinary.Attrs{"id": id}})
		}
		n.Content = []waBinary.Node{{Tag: "list", Content: items}}
	}
	return n
}

// receiptIDs lists the message IDs a receipt node covers, the main one first.
func receiptIDs(n waBinary.Node) []string {
	id, _ := n.Attrs["id"].(string)
	ids := []string{id}
	list := n.GetChildByTag("list")
	for _, item := range list.GetChildren() {
		if iid, _ := item.Attrs["id"].(string); iid != "" && item.Tag == "item" {
			ids = append(ids, iid)
		}
	}
	return ids
}

// receiptDetail is an event's Detail for a receipt to the bot: its IDs,
// comma-separated, then its type ("read"); a delivery receipt has no type.
func receiptDetail(n waBinary.Node) string {
	typ, _ := n.Attrs["type"].(string)
	return strings.TrimSpace(strings.Join(receiptIDs(n), ",") + " " + typ)
}

// receiptToAccount queues a contact's receipt for every companion device of
// the account and sends it on their live connections (deliver).
func (s *Server) receiptToAccount(n waBinary.Node) {
	s.mu.Lock()
	devices := make([]uint16, 0, len(s.acct.Devices))
	for id := range s.acct.Devices {
		devices = append(devices, id)
	}
	s.mu.Unlock()
	slices.Sort(devices)
	id, _ := n.Attrs["id"].(string)
	for _, dev := range devices {
		s.deliver(dev, pendingMsg{id: id, node: n})
	}
}

// pushedEvent is the event recording that m was written to a bot connection.
func pushedEvent(m pendingMsg) (EventKind, string) {
	if m.node.Tag == "receipt" {
		return EventReceiptToBot, receiptDetail(m.node)
	}
	return EventDelivered, m.id
}

// settleReceipt drops the receipt a device acked from its queue: the first
// one with the ack's id, from (the ack's to) and type.
func (s *Server) settleReceipt(c *conn, dev uint16, ack *waBinary.Node) {
	id, _ := ack.Attrs["id"].(string)
	to, _ := ack.Attrs["to"].(types.JID)
	typ, _ := ack.Attrs["type"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.pending[dev] {
		from, _ := m.node.Attrs["from"].(types.JID)
		mtyp, _ := m.node.Attrs["type"].(string)
		if m.node.Tag == "receipt" && m.id == id && from == to && mtyp == typ {
			s.pending[dev] = slices.Delete(s.pending[dev], i, i+1)
			s.emitLocked(Event{Kind: EventReceiptAcked, ConnID: c.id, JID: c.jidString(), Detail: receiptDetail(m.node)})
			return
		}
	}
}

// Read makes the contact open its chat with the bot and read the messages
// ids (none: every message it has and has not read yet). It sends the
// bot's account one read receipt for them, as WhatsApp's apps batch them,
// unless its read receipts are off (ContactSettings.ReadReceipts); an
// offline contact reads what it has and sends the receipt when it is back
// online. It returns the IDs it read now, first arrival first, and fails
// for an ID it never received (a message the server still keeps for an
// offline contact is not received yet).
func (ct *Contact) Read(ids ...string) ([]string, error) {
	return ct.read(ids, true)
}

// read marks messages read and sends (or holds) their receipt; strict
// makes an ID the contact does not have an error instead of skipping it.
func (ct *Contact) read(ids []string, strict bool) ([]string, error) {
	now := time.Now()
	ct.mu.Lock()
	if strict {
		if missing := ct.missingLocked(ids); missing != "" {
			ct.mu.Unlock()
			return nil, &readError{number: ct.number, id: missing}
		}
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var read []InboxMessage
	seen := map[string]bool{}
	for i := range ct.inbox {
		m := &ct.inbox[i]
		if len(ids) > 0 && !want[m.ID] || !m.Read.IsZero() {
			continue
		}
		m.Read = now
		if !seen[m.ID] {
			seen[m.ID] = true
			read = append(read, *m)
		}
	}
	st := ct.settings
	nodes := readReceipts(read, now)
	if !st.Online && st.ReadReceipts {
		ct.heldReads = append(ct.heldReads, nodes...)
	}
	ct.mu.Unlock()
	out := make([]string, 0, len(read))
	for _, m := range read {
		out = append(out, m.ID)
	}
	if len(out) == 0 {
		return out, nil
	}
	ct.s.emit(Event{Kind: EventContactRead, JID: ct.JID().String(), Detail: strings.Join(out, ",")})
	if st.Online && st.ReadReceipts {
		for _, n := range nodes {
			ct.s.receiptToAccount(n)
		}
	}
	return out, nil
}

// missingLocked names the first of ids the contact has not received; ct.mu must be held.
func (ct *Contact) missingLocked(ids []string) string {
	have := make(map[string]bool, len(ct.inbox))
	for _, m := range ct.inbox {
		have[m.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			return id
		}
	}
	return ""
}

type readError struct{ number, id string }

func (e *readError) Error() string {
	return "contact read: contact " + e.number + " has not received message " + e.id
}

// readReceipts groups messages read at once into one read receipt per
// address the bot wrote them to (a contact moved to its LID mid-chat has
// messages under both), in reading order.
func readReceipts(read []InboxMessage, at time.Time) []waBinary.Node {
	var addrs []types.JID
	byAddr := map[types.JID][]string{}
	for _, m := range read {
		if _, ok := byAddr[m.addr]; !ok {
			addrs = append(addrs, m.addr)
		}
		byAddr[m.addr] = append(byAddr[m.addr], m.ID)
	}
	nodes := make([]waBinary.Node, 0, len(addrs))
	for _, a := range addrs {
		nodes = append(nodes, receiptNode(a, receiptRead, byAddr[a], at))
	}
	return nodes
}

// scheduleRead makes the contact read ids by itself after its ReadAfter.
func (ct *Contact) scheduleRead(ids []string) {
	ct.mu.Lock()
	after := ct.settings.ReadAfter
	ct.mu.Unlock()
	if after < 0 || len(ids) == 0 {
		return
	}
	time.AfterFunc(after, func() {
		if ct.s.ctx.Err() != nil {
			return
		}
		_, _ = ct.read(ids, false)
	})
}
