package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mau.fi/whatsmeow/proto/waAdv"
	wastore "go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

const (
	testPass    = "correct horse battery staple"
	testSession = "default"
)

// testKDF keeps Argon2id cheap in tests; Decode takes the parameters
// from the file, so the production path is the same.
var testKDF = kdfParams{Time: 1, MemoryKiB: 64, Threads: 1}

var kinds = []store.Engine{store.SQLite, store.Postgres}

// openStore returns a fresh, migrated store of the given kind.
func openStore(t *testing.T, kind store.Engine) *store.Store {
	t.Helper()
	return testkit.Store(t, kind)
}

func testKeyring(t testing.TB, pass string) *keyring {
	t.Helper()
	k, err := newKeyring(pass, testKDF)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// pairDevice stores a device for sessionID as pairing would, with rows in
// every whatsmeow table, and returns it.
func pairDevice(t *testing.T, st *store.Store, sessionID, phone string) *wastore.Device {
	t.Helper()
	ctx := context.Background()
	dev := st.Container().NewDevice()
	id := types.NewADJID(phone, 0, 7)
	dev.ID = &id
	dev.LID = types.NewADJID("9"+phone, 0, 7)
	dev.LID.Server = types.HiddenUserServer
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details:             randBytes(40),
		AccountSignatureKey: randBytes(32),
		AccountSignature:    randBytes(64),
		DeviceSignature:     randBytes(64),
	}
	dev.Platform, dev.PushName = "android", "Blacksky Bot"
	dev.FacebookUUID = uuid.New()
	dev.LIDMigrationTimestamp = 1764000000
	if err := st.Container().PutDevice(ctx, dev); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	if err := st.BindAccount(ctx, sessionID, id); err != nil {
		t.Fatal(err)
	}
	contact := types.NewJID("15550009999", types.DefaultUserServer)
	group := types.NewJID("120363000000000001", types.GroupServer)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dev.Identities.PutIdentity(ctx, "15550009999.0:0", [32]byte(randBytes(32))))
	for i := range 3 {
		must(dev.Sessions.PutSession(ctx, fmt.Sprintf("1555000999%d.0:0", i), randBytes(300)))
	}
	_, err := dev.PreKeys.GetOrGenPreKeys(ctx, 5)
	must(err)
	must(dev.PreKeys.MarkPreKeysAsUploaded(ctx, 3))
	must(dev.SenderKeys.PutSenderKey(ctx, group.String(), "15550009999.0:0", randBytes(100)))
	must(dev.AppStateKeys.PutAppStateSyncKey(ctx, randBytes(6), wastore.AppStateSyncKey{Data: randBytes(32), Fingerprint: randBytes(20), Timestamp: 1764000000}))
	must(dev.AppState.PutAppStateVersion(ctx, "regular", 7, [128]byte(randBytes(128))))
	must(dev.AppState.PutAppStateMutationMACs(ctx, "regular", 7, []wastore.AppStateMutationMAC{{IndexMAC: randBytes(32), ValueMAC: randBytes(32)}}))
	_, _, err = dev.Contacts.PutPushName(ctx, contact, "Alice")
	must(err)
	must(dev.Contacts.PutContactName(ctx, contact, "Alice", "Alice Liddell"))
	must(dev.ChatSettings.PutPinned(ctx, contact, true))
	must(dev.ChatSettings.PutMutedUntil(ctx, group, time.Unix(1900000000, 0)))
	must(dev.MsgSecrets.PutMessageSecret(ctx, group, contact, "3EB0ABC", randBytes(32)))
	must(dev.PrivacyTokens.PutPrivacyTokens(ctx, wastore.PrivacyToken{User: contact, Token: randBytes(24), Timestamp: time.Unix(1764000000, 0)}))
	must(dev.EventBuffer.PutBufferedEvent(ctx, [32]byte(randBytes(32)), randBytes(50), time.Unix(1764000000, 0)))
	must(dev.EventBuffer.AddOutgoingEvent(ctx, contact, "3EB0DEF", "wa", randBytes(40)))
	must(dev.NCTSalt.PutNCTSalt(ctx, randBytes(32)))
	must(dev.LIDs.PutLIDMapping(ctx, types.NewJID("88880000", types.HiddenUserServer), contact))
	return dev
}

// deviceRows counts the rows per table that belong to jid (all rows of
// shared tables), straight from the database.
func deviceRows(t *testing.T, st *store.Store, jid types.JID) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, spec := range sessionTables {
		q, args := "SELECT COUNT(*) FROM "+spec.name, []any{}
		if spec.key != "" {
			q += " WHERE " + spec.key + " = $1"
			args = append(args, jid.String())
		}
		var n int
		if err := st.DB().QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", spec.name, err)
		}
		out[spec.name] = n
	}
	return out
}

// sameSession fails unless both snapshots hold the same rows, regardless
// of row order.
func sameSession(t *testing.T, want, got *Session) {
	t.Helper()
	if want.SessionID != got.SessionID || want.JID != got.JID || !want.PairedAt.Equal(got.PairedAt) {
		t.Fatalf("session %s/%s/%v, want %s/%s/%v", got.SessionID, got.JID, got.PairedAt, want.SessionID, want.JID, want.PairedAt)
	}
	for _, wt := range want.Tables {
		gt := got.table(wt.Name)
		if gt == nil {
			t.Fatalf("table %s missing", wt.Name)
		}
		if !slices.Equal(wt.Columns, gt.Columns) {
			t.Fatalf("table %s columns %v, want %v", wt.Name, gt.Columns, wt.Columns)
		}
		if w, g := rowSet(wt), rowSet(*gt); !slices.Equal(w, g) {
			t.Fatalf("table %s rows differ:\n got %q\nwant %q", wt.Name, g, w)
		}
	}
}

func rowSet(t Table) []string {
	var out []string
	for _, r := range t.Rows {
		var b bytes.Buffer
		for _, v := range r {
			fmt.Fprintf(&b, "%T:%v|", v, v)
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out
}
