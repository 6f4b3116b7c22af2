package sandbox

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waWeb"
	"go.mau.fi/whatsmeow/types"
)

// A linked device that could not decrypt a message asks the account's phone
// for it: a peer message (category=peer, to the account's own number) that
// carries a PeerDataOperationRequestMessage of type
// PLACEHOLDER_MESSAGE_RESEND naming the message's key (whatsmeow
// BuildUnavailableMessageRequest). The phone, which got its own copy of every
// message to the account, answers with a peer message from device 0 carrying
// a PeerDataOperationRequestResponseMessage: per message, the
// WebMessageInfo (key, content, time, push name) serialised, which whatsmeow
// dispatches as an ordinary events.Message with UnavailableRequestID set
// (message.go handlePlaceholderResendResponse). A message the phone never
// had gets no answer.

// placeholderRequest returns the placeholder resend request in m, or nil.
func placeholderRequest(m *waE2E.Message) *waE2E.PeerDataOperationRequestMessage {
	req := m.GetProtocolMessage().GetPeerDataOperationRequestMessage()
	if req.GetPeerDataOperationRequestType() != waE2E.PeerDataOperationRequestType_PLACEHOLDER_MESSAGE_RESEND {
		return nil
	}
	return req
}

// answerPlaceholderResend makes the phone answer the request reqID from the
// bot device dev with the messages it has of those asked for.
func (s *Server) answerPlaceholderResend(ctx context.Context, dev types.JID, reqID string, req *waE2E.PeerDataOperationRequestMessage) {
	var results []*waE2E.PeerDataOperationRequestResponseMessage_PeerDataOperationResult
	var found []string
	for _, r := range req.GetPlaceholderMessageResendRequest() {
		key := r.GetMessageKey()
		web, ok := s.phoneCopy(key)
		if !ok {
			s.log.Info("phone has no message for a placeholder resend request", "id", key.GetID(), "chat", key.GetRemoteJID())
			continue
		}
		raw, err := proto.Marshal(web)
		if err != nil {
			s.log.Error("marshal placeholder resend", "id", key.GetID(), "err", err)
			continue
		}
		results = append(results, &waE2E.PeerDataOperationRequestResponseMessage_PeerDataOperationResult{
			PlaceholderMessageResendResponse: &waE2E.PeerDataOperationRequestResponseMessage_PeerDataOperationResult_PlaceholderMessageResendResponse{
				WebMessageInfoBytes: raw,
			},
		})
		found = append(found, key.GetID())
	}
	if len(results) == 0 {
		return
	}
	msg := &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE.Enum(),
		PeerDataOperationRequestResponseMessage: &waE2E.PeerDataOperationRequestResponseMessage{
			PeerDataOperationRequestType: waE2E.PeerDataOperationRequestType_PLACEHOLDER_MESSAGE_RESEND.Enum(),
			StanzaID:                     proto.String(reqID),
			PeerDataOperationResult:      results,
		},
	}}
	id, node, err := s.phoneMessage(ctx, dev.Device, msg)
	if err != nil {
		s.log.Error("answer placeholder resend", "device", dev, "err", err)
		return
	}
	for _, f := range found {
		s.emit(Event{Kind: EventPlaceholderResent, JID: dev.String(), Detail: f})
	}
	s.deliver(dev.Device, pendingMsg{id: id, node: node})
}

// phoneCopy is the phone's copy of the message key names: one a contact
// sent to the account, in the chat the key names (by number or LID).
func (s *Server) phoneCopy(key *waCommon.MessageKey) (*waWeb.WebMessageInfo, bool) {
	if key.GetFromMe() {
		return nil, false // the bot's own messages are not simulated as the phone's copies
	}
	chat, err := types.ParseJID(key.GetRemoteJID())
	if err != nil {
		return nil, false
	}
	_, ct := s.resolve(chat)
	if ct == nil {
		return nil, false
	}
	for _, m := range ct.Sent() {
		if m.ID != key.GetID() {
			continue
		}
		return &waWeb.WebMessageInfo{
			Key: &waCommon.MessageKey{
				RemoteJID: proto.String(chat.String()),
				FromMe:    proto.Bool(false),
				ID:        proto.String(m.ID),
			},
			Message:          &waE2E.Message{Conversation: proto.String(m.Text)},
			MessageTimestamp: proto.Uint64(uint64(m.Time.Unix())),
			PushName:         proto.String(pushNameOf(ct)),
		}, true
	}
	return nil, false
}

// pushNameOf is the name a contact's messages carry (the notify attribute).
func pushNameOf(ct *Contact) string { return fmt.Sprintf("Contact %s", ct.number) }
