package bot

import (
	"context"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/store"
)

func TestInbox(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, nil)
			ctx := context.Background()
			now := f.clock.Now()
			in := Message{
				Chat: groupJID, MsgID: "3EB0AA", Sender: ownerLID, SenderAlt: ownerJID, PushName: "Ünïcode 🙂",
				IsGroup: true, Kind: "text", Text: "line one\nline two", SentAt: now.Add(-2 * time.Second).Truncate(time.Second), ReceivedAt: now,
			}
			if created, err := f.bot.Store(ctx, in); err != nil || !created {
				t.Fatalf("Store = %v, %v", created, err)
			}
			if created, err := f.bot.Store(ctx, in); err != nil || created {
				t.Fatalf("second Store = %v, %v; want a no-op", created, err)
			}
			got, ok, err := f.bot.Get(ctx, in.Chat, in.MsgID)
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			got.ID, in.State = 0, Pending
			if !got.SentAt.Equal(in.SentAt) || !got.ReceivedAt.Equal(in.ReceivedAt) {
				t.Errorf("times %v %v, want %v %v", got.SentAt, got.ReceivedAt, in.SentAt, in.ReceivedAt)
			}
			got.SentAt, got.ReceivedAt, in.SentAt, in.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if got != in {
				t.Errorf("stored %+v\nwant   %+v", got, in)
			}
			if p := got.SenderPhone(); p != ownerPhone {
				t.Errorf("SenderPhone = %q", p)
			}

			// Order: chats by their oldest pending message.
			for _, m := range []Message{msg(strangerJID, "a"), msg(ownerJID, "b"), msg(strangerJID, "c")} {
				m.SentAt, m.ReceivedAt = now, now
				if _, err := f.bot.Store(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			claimed, err := f.bot.jobs.Claim(ctx, 10, f.bot.owner, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var chats []string
			for _, j := range claimed {
				chats = append(chats, j.Partition)
				if err := f.bot.jobs.Release(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			if len(chats) != 3 || chats[0] != groupJID || chats[1] != strangerJID || chats[2] != ownerJID {
				t.Errorf("claimed chats = %q, want each chat's oldest message, oldest first", chats)
			}
			f.bot.handleDue(ctx)
			d, err := f.bot.InboxDepths(ctx)
			if err != nil || d[Handled] != 4 || d[Pending] != 0 {
				t.Fatalf("depths = %v, %v", d, err)
			}
			f.clock.Advance(DefaultRetention + time.Minute)
			if n, err := f.bot.Prune(ctx); err != nil || n != 4 {
				t.Fatalf("Prune = %d, %v", n, err)
			}
		})
	}
}

func TestFromEvent(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	jid := func(s string) types.JID {
		j, err := types.ParseJID(s)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	ev := func(chat, sender string, m *waE2E.Message) *events.Message {
		return &events.Message{Info: types.MessageInfo{
			MessageSource: types.MessageSource{Chat: jid(chat), Sender: jid(sender)},
			ID:            "ID1", Timestamp: now.Add(-time.Second),
		}, Message: m}
	}
	tests := []struct {
		name       string
		evt        *events.Message
		ok         bool
		kind, text string
	}{
		{"conversation", ev(strangerJID, strangerJID, &waE2E.Message{Conversation: proto.String(".ping")}), true, "text", ".ping"},
		{"extended", ev(strangerJID, strangerJID, &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("hi")}}), true, "text", "hi"},
		{"caption", ev(strangerJID, strangerJID, &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String(".menu")}}), true, "image", ".menu"},
		{"NUL and bad UTF-8", ev(strangerJID, strangerJID, &waE2E.Message{Conversation: proto.String("a\x00b\xff")}), true, "text", "ab\uFFFD"},
		{"sticker", ev(strangerJID, strangerJID, &waE2E.Message{StickerMessage: &waE2E.StickerMessage{}}), true, "sticker", ""},
		{"status broadcast", ev("status@broadcast", strangerJID, &waE2E.Message{Conversation: proto.String("x")}), false, "", ""},
		{"device sender", ev(strangerJID, "4915100000002:3@s.whatsapp.net", &waE2E.Message{Conversation: proto.String("x")}), true, "text", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := fromEvent(tt.evt, now)
			if ok != tt.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if m.Kind != tt.kind || m.Text != tt.text || m.Sender != strangerJID || m.Chat != strangerJID || m.MsgID != "ID1" || !m.SentAt.Equal(now.Add(-time.Second)) {
				t.Errorf("got %+v", m)
			}
		})
	}
}

// TestLIDChatIsThePhoneNumberChat: WhatsApp addresses a contact's messages
// by LID with its number beside them; the inbox keeps them in the chat of
// the number, as the outgoing queue does, and keeps both addresses of the sender.
func TestLIDChatIsThePhoneNumberChat(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	lid := types.NewJID("211111111111111", types.HiddenUserServer)
	pn := types.NewJID("4915100000001", types.DefaultUserServer)
	tests := []struct {
		name string
		src  types.MessageSource
		chat string
	}{
		{"from a LID contact with its number", types.MessageSource{Chat: lid, Sender: lid, SenderAlt: pn}, pn.String()},
		{"from our phone to a LID contact", types.MessageSource{Chat: lid, Sender: types.NewJID("15550000001", types.DefaultUserServer), IsFromMe: true, RecipientAlt: pn}, pn.String()},
		{"from a LID whose number is not given", types.MessageSource{Chat: lid, Sender: lid}, lid.String()},
		{"a group", types.MessageSource{Chat: types.NewJID("120363025246125486", types.GroupServer), Sender: lid, SenderAlt: pn, IsGroup: true}, "120363025246125486@g.us"},
	}
	for _, tt := range tests {
		m, ok := fromEvent(&events.Message{Info: types.MessageInfo{MessageSource: tt.src, ID: "ID1", Timestamp: now},
			Message: &waE2E.Message{Conversation: proto.String("hi")}}, now)
		if !ok || m.Chat != tt.chat {
			t.Errorf("%s: chat %q (ok %v), want %q", tt.name, m.Chat, ok, tt.chat)
		}
		if !tt.src.IsFromMe && (m.Sender != tt.src.Sender.String() || m.SenderAlt != tt.src.SenderAlt.ToNonAD().String() && !tt.src.SenderAlt.IsEmpty()) {
			t.Errorf("%s: sender %q alt %q", tt.name, m.Sender, m.SenderAlt)
		}
	}
}

// When the message cannot be stored, HandleEvent reports failure, which
// makes whatsmeow withhold WhatsApp's acknowledgement.
func TestHandleEventReportsStoreFailure(t *testing.T) {
	f := newFixture(t, store.SQLite, nil)
	evt := &events.Message{Info: types.MessageInfo{
		MessageSource: types.MessageSource{Chat: types.NewJID("4915100000002", types.DefaultUserServer), Sender: types.NewJID("4915100000002", types.DefaultUserServer)},
		ID:            "ID1", Timestamp: f.clock.Now(),
	}, Message: &waE2E.Message{Conversation: proto.String(".ping")}}
	if !f.bot.HandleEvent(evt) {
		t.Fatal("HandleEvent failed on a working database")
	}
	if !f.bot.HandleEvent(evt) {
		t.Fatal("HandleEvent failed on a redelivery")
	}
	if _, err := f.st.DB().Exec("DROP TABLE blacksky_inbox"); err != nil {
		t.Fatal(err)
	}
	if f.bot.HandleEvent(evt) {
		t.Fatal("HandleEvent reported success although nothing was stored")
	}
	if !f.bot.HandleEvent(&events.Connected{}) {
		t.Fatal("HandleEvent failed on a Connected event")
	}
}

// Issue 13, case 9: WhatsApp deletes its copy of an incoming message once
// the bot acks it, and the bot acks once Store returns: on SQLite that
// commit must survive power loss (synchronous=FULL for it).
func TestStoreCommitIsDurable(t *testing.T) {
	f := newFixture(t, store.SQLite, nil)
	before := sqlitedb.StatsOf(f.st.DB()).DurableCommits
	in := Message{Chat: groupJID, MsgID: "3EB0DURABLE", Sender: ownerLID, Kind: "text", Text: "x", SentAt: f.clock.Now(), ReceivedAt: f.clock.Now()}
	if _, err := f.bot.Store(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if n := sqlitedb.StatsOf(f.st.DB()).DurableCommits - before; n != 1 {
		t.Errorf("%d durable commits for one stored message; want 1", n)
	}
}
