package contacts

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
)

// fakeClient answers like WhatsApp for a fixed set of accounts and counts
// the usync round trips.
type fakeClient struct {
	lids  map[types.JID]types.JID // PN -> LID known to whatsmeow's map
	users map[string]types.JID    // number -> LID (empty JID: an account with no LID)
	asked int
	fail  error
}

func (f *fakeClient) IsOnWhatsApp(_ context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	f.asked++
	if f.fail != nil {
		return nil, f.fail
	}
	var out []types.IsOnWhatsAppResponse
	for _, p := range phones {
		number := p[1:]
		pn := types.NewJID(number, types.DefaultUserServer)
		lid, in := f.users[number]
		r := types.IsOnWhatsAppResponse{Query: p, JID: pn, IsIn: in}
		if !lid.IsEmpty() {
			r.JID, r.PhoneNumber = lid, pn
			f.lids[pn] = lid // whatsmeow stores the mapping it was told
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeClient) LIDForPN(_ context.Context, pn types.JID) (types.JID, error) {
	return f.lids[pn], nil
}

func (f *fakeClient) PNForLID(_ context.Context, lid types.JID) (types.JID, error) {
	for pn, l := range f.lids {
		if l == lid {
			return pn, nil
		}
	}
	return types.JID{}, nil
}

func pn(n string) types.JID  { return types.NewJID(n, types.DefaultUserServer) }
func lid(n string) types.JID { return types.NewJID(n, types.HiddenUserServer) }

func TestLookup(t *testing.T) {
	ctx := context.Background()
	f := &fakeClient{lids: map[types.JID]types.JID{}, users: map[string]types.JID{
		"4915100000001": lid("201"), "4915100000002": {},
	}}
	d := New(func() Client { return f })
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }

	tests := []struct {
		name  string
		jid   types.JID
		want  Contact
		asked int // round trips after this lookup, in total
	}{
		{"unknown number with a LID", pn("4915100000001"), Contact{pn("4915100000001"), lid("201"), true}, 1},
		{"the same, now in the LID map", pn("4915100000001"), Contact{pn("4915100000001"), lid("201"), true}, 1},
		{"its LID", lid("201"), Contact{pn("4915100000001"), lid("201"), true}, 1},
		{"a device JID of it", types.NewADJID("4915100000001", 0, 3), Contact{pn("4915100000001"), lid("201"), true}, 1},
		{"account without a LID", pn("4915100000002"), Contact{Phone: pn("4915100000002"), OnWhatsApp: true}, 2},
		{"the same, cached", pn("4915100000002"), Contact{Phone: pn("4915100000002"), OnWhatsApp: true}, 2},
		{"not on WhatsApp", pn("4915100000003"), Contact{Phone: pn("4915100000003")}, 3},
		{"not on WhatsApp, cached", pn("4915100000003"), Contact{Phone: pn("4915100000003")}, 3},
		{"a LID nobody mapped", lid("999"), Contact{LID: lid("999"), OnWhatsApp: true}, 3},
	}
	for _, tt := range tests {
		got, err := d.Lookup(ctx, tt.jid)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want || f.asked != tt.asked || d.Asked() != tt.asked {
			t.Errorf("%s: Lookup(%s) = %+v after %d round trips; want %+v after %d", tt.name, tt.jid, got, f.asked, tt.want, tt.asked)
		}
	}
	// An hour later the answers the LID map cannot hold are asked again.
	now = now.Add(cacheTTL)
	if got, _ := d.Lookup(ctx, pn("4915100000003")); got.OnWhatsApp || f.asked != 4 {
		t.Errorf("after the TTL: %+v, %d round trips; want a new question", got, f.asked)
	}
}

func TestLookupFailures(t *testing.T) {
	ctx := context.Background()
	f := &fakeClient{lids: map[types.JID]types.JID{}, fail: errors.New("iq timed out")}
	d := New(func() Client { return f })
	if _, err := d.Lookup(ctx, pn("4915100000004")); !errors.Is(err, f.fail) {
		t.Fatalf("lookup while WhatsApp does not answer: %v", err)
	}
	f.fail = nil
	if got, err := d.Lookup(ctx, pn("4915100000004")); err != nil || got.OnWhatsApp || f.asked != 2 {
		t.Fatalf("a failed lookup was cached: %+v, %v, %d round trips", got, err, f.asked)
	}
	if _, err := d.Lookup(ctx, types.NewJID("120363000000000001", types.GroupServer)); !errors.Is(err, ErrNotUser) {
		t.Errorf("group JID: %v, want ErrNotUser", err)
	}
	f.fail = whatsmeow.ErrNotConnected
	if _, err := d.Lookup(ctx, pn("4915100000005")); !errors.Is(err, ErrNoClient) {
		t.Errorf("while not connected: %v, want ErrNoClient", err)
	}
	none := New(func() Client { return nil })
	if _, err := none.Lookup(ctx, pn("4915100000001")); !errors.Is(err, ErrNoClient) {
		t.Errorf("without a client: %v, want ErrNoClient", err)
	}
}
