package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

func doJSON(t *testing.T, method, url, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t, 30*time.Second), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	_ = json.Unmarshal(raw, &obj)
	return resp.StatusCode, obj, raw
}

func TestControlAPIRejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	if _, err := s.AddContact("4915100000001"); err != nil {
		t.Fatal(err)
	}
	base := s.ControlURL()
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad json", "POST", "/control/contacts", `{"number":`, 400},
		{"unknown field", "POST", "/control/contacts", `{"number":"4915100000002","x":1}`, 400},
		{"trailing data", "POST", "/control/contacts", `{"number":"4915100000002"} {}`, 400},
		{"bad number", "POST", "/control/contacts", `{"number":"abc"}`, 400},
		{"unknown fault", "POST", "/control/faults", `{"kind":"meteor"}`, 400},
		{"bad duration", "POST", "/control/faults", `{"kind":"refuse","duration":"soon"}`, 400},
		{"negative duration", "POST", "/control/faults", `{"kind":"refuse","duration":"-1s"}`, 400},
		{"unknown contact inbox", "GET", "/control/contacts/4915999999999/inbox", ``, 400},
		{"unknown contact send", "POST", "/control/contacts/4915999999999/send", `{"text":"x"}`, 400},
		{"empty text", "POST", "/control/contacts/4915100000001/send", `{"text":""}`, 400},
		{"send without linked device", "POST", "/control/contacts/4915100000001/send", `{"text":"x"}`, 409},
		{"scan unknown ref", "POST", "/control/phone/scan", `{"qr":"2@x,AAAA,AAAA,AAAA"}`, 400},
		{"code without pairing client", "POST", "/control/phone/code", `{"code":"ABCD-EFGH"}`, 400},
		{"too large", "POST", "/control/contacts", `{"number":"` + strings.Repeat("1", maxControlBody) + `"}`, 413},
		{"unknown endpoint", "GET", "/control/nope", ``, 404},
		{"events since not a number", "GET", "/control/events?since=x", ``, 400},
		{"settings of unknown contact", "GET", "/control/contacts/4915999999999/settings", ``, 400},
		{"settings unknown field", "PUT", "/control/contacts/4915100000001/settings", `{"away":true}`, 400},
		{"settings bad delay", "PUT", "/control/contacts/4915100000001/settings", `{"read_after_ms":-5}`, 400},
		{"read bad json", "POST", "/control/contacts/4915100000001/read", `{"ids":"x"}`, 400},
		{"read message not received", "POST", "/control/contacts/4915100000001/read", `{"ids":["3EB0NOPE"]}`, 409},
		{"reinstall unknown contact", "POST", "/control/contacts/4915999999999/reinstall", ``, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, obj, raw := doJSON(t, tc.method, base+tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%s)", status, tc.status, raw)
			}
			if msg, _ := obj["error"].(string); msg == "" {
				t.Fatalf("no JSON error in %s", raw)
			}
		})
	}
}

func TestControlAPIFlow(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	ctx := testCtx(t, 30*time.Second)
	trust, err := FetchTrust(ctx, s.ControlURL())
	if err != nil {
		t.Fatalf("fetch trust: %v", err)
	}
	if trust != s.Trust() {
		t.Fatalf("fetched trust differs from Server.Trust")
	}

	// Pair through the control API, as a human or a script would.
	b := newBot(t, s, "")
	qrs, err := b.cli.GetQRChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	qr := <-qrs
	body, _ := json.Marshal(map[string]string{"qr": qr.Code})
	if status, _, raw := doJSON(t, "POST", s.ControlURL()+"/control/phone/scan", string(body)); status != 200 {
		t.Fatalf("scan: %d %s", status, raw)
	}
	waitEvent[*events.Connected](t, ctx, b.rec, 0)

	status, _, raw := doJSON(t, "GET", s.ControlURL()+"/control/connections", "")
	var conns []ConnInfo
	if err := json.Unmarshal(raw, &conns); status != 200 || err != nil || len(conns) != 1 || conns[0].JID != b.cli.Store.ID.String() {
		t.Fatalf("connections: %d %s", status, raw)
	}

	if status, _, raw := doJSON(t, "POST", s.ControlURL()+"/control/contacts", `{"number":"+4915100000003"}`); status != 201 {
		t.Fatalf("create contact: %d %s", status, raw)
	}
	_, _, raw = doJSON(t, "GET", s.ControlURL()+"/control/contacts", "")
	if !bytes.Contains(raw, []byte("4915100000003@s.whatsapp.net")) {
		t.Fatalf("contacts: %s", raw)
	}
	ct := s.Contact("4915100000003")
	if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("via api")); err != nil {
		t.Fatal(err)
	}
	_, _, raw = doJSON(t, "GET", s.ControlURL()+"/control/contacts/4915100000003/inbox", "")
	var inbox []InboxMessage
	if err := json.Unmarshal(raw, &inbox); err != nil || len(inbox) != 1 || inbox[0].Text != "via api" {
		t.Fatalf("inbox: %s", raw)
	}

	mark := b.rec.mark()
	status, obj, raw := doJSON(t, "POST", s.ControlURL()+"/control/contacts/4915100000003/send", `{"text":"from api"}`)
	if status != 200 || obj["id"] == "" {
		t.Fatalf("send: %d %s", status, raw)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if msg.Info.ID != obj["id"] || msg.Message.GetConversation() != "from api" {
		t.Fatalf("bot got %s %q", msg.Info.ID, msg.Message.GetConversation())
	}
	if err := s.WaitFor(ctx, func() bool { return len(ct.Receipts()) > 0 }); err != nil {
		t.Fatal(err)
	}

	mark = b.rec.mark()
	if status, _, raw := doJSON(t, "POST", s.ControlURL()+"/control/faults", `{"kind":"drop"}`); status != 200 {
		t.Fatalf("fault: %d %s", status, raw)
	}
	waitEvent[*events.Disconnected](t, ctx, b.rec, mark)
	waitEvent[*events.Connected](t, ctx, b.rec, mark)

	if status, _, raw := doJSON(t, "POST", s.ControlURL()+"/control/faults", `{"kind":"refuse","duration":"1m"}`); status != 200 {
		t.Fatalf("fault: %d %s", status, raw)
	}
	_, _, raw = doJSON(t, "GET", s.ControlURL()+"/control/faults", "")
	if !bytes.Contains(raw, []byte(`"refuse"`)) {
		t.Fatalf("active faults: %s", raw)
	}
	if status, _, _ := doJSON(t, "DELETE", s.ControlURL()+"/control/faults", ""); status != 204 {
		t.Fatalf("clear: %d", status)
	}
	if len(s.ActiveFaults()) != 0 {
		t.Fatalf("faults left: %v", s.ActiveFaults())
	}
}

// FuzzControlJSON feeds arbitrary bodies to every JSON endpoint: never a 5xx, never a panic.
func FuzzControlJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"kind":"refuse","duration":"1s"}`, `{"number":"4915100000001"}`,
		`{"qr":"a,b,c,d"}`, `{"code":"ABCD-EFGH"}`, `{"text":"hi"}`, `{"id":"3EB0ABCDEF"}`, `[]`, `null`, `{"kind":1}`, "\x00"} {
		f.Add(seed)
	}
	s, err := New(Options{NoiseRootKey: testRootPriv})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	h := s.ControlHandler()
	paths := []string{"/control/contacts", "/control/faults", "/control/phone/scan", "/control/phone/code", "/control/contacts/4915100000001/send", "/control/contacts/4915100000001/retry"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			req := httptest.NewRequestWithContext(context.Background(), "POST", p, strings.NewReader(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: status %d", p, body, rec.Code)
			}
		}
		s.ClearFaults()
	})
}

// A web page can POST text/plain to 127.0.0.1 without the browser asking
// first; the control API must not act on such a request.
func TestControlAPIRefusesNonJSONPosts(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	resp, err := http.Post(s.ControlURL()+"/control/faults", "text/plain", strings.NewReader(`{"kind":"down"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("text/plain POST answered %d; want a 4xx", resp.StatusCode)
	}
	if f := s.ActiveFaults(); len(f) != 0 {
		t.Errorf("the request injected %v", f)
	}
}

// A watcher reads only what happened since it last looked.
func TestControlEventsSince(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	for _, n := range []string{"4915100000001", "4915100000002"} {
		if _, err := s.AddContact(n); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) []Event {
		t.Helper()
		resp, err := http.Get(s.ControlURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var evs []Event
		if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
			t.Fatal(err)
		}
		return evs
	}
	all := get("/control/events")
	if len(all) < 2 {
		t.Fatalf("%d events for two contacts added", len(all))
	}
	last := all[len(all)-2].Seq
	after := get(fmt.Sprintf("/control/events?since=%d", last))
	if len(after) != 1 || after[0].Seq != all[len(all)-1].Seq {
		t.Errorf("events since %d = %+v; want only the last one", last, after)
	}
}

// The contact's phone through the control API: its settings, reading on
// demand and reinstalling.
func TestControlAPIContactPhone(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	ct, err := s.AddContact("4915100000004")
	if err != nil {
		t.Fatal(err)
	}
	base := s.ControlURL() + "/control/contacts/4915100000004"
	if status, _, raw := doJSON(t, "GET", base+"/settings", ""); status != 200 || string(bytes.TrimSpace(raw)) != `{"online":true,"read_receipts":true,"read_after_ms":-1}` {
		t.Fatalf("default settings: %d %s", status, raw)
	}
	// A field left out keeps its value.
	status, _, raw := doJSON(t, "PUT", base+"/settings", `{"online":false,"read_after_ms":250}`)
	if status != 200 || string(bytes.TrimSpace(raw)) != `{"online":false,"read_receipts":true,"read_after_ms":250}` {
		t.Fatalf("put settings: %d %s", status, raw)
	}
	if st := ct.Settings(); st.Online || !st.ReadReceipts || st.ReadAfter != 250*time.Millisecond {
		t.Fatalf("settings after the put: %+v", st)
	}
	if status, _, raw := doJSON(t, "PUT", base+"/settings", `{"online":true,"read_after_ms":-1}`); status != 200 {
		t.Fatalf("put settings: %d %s", status, raw)
	}

	mark := b.rec.mark()
	id := send(t, ctx, b, ct.JID(), "read over http")
	receiptFor(t, ctx, b, mark, "", id)
	status, _, raw = doJSON(t, "POST", base+"/read", "")
	var read readResult
	if err := json.Unmarshal(raw, &read); status != 200 || err != nil || len(read.IDs) != 1 || read.IDs[0] != id {
		t.Fatalf("read: %d %s", status, raw)
	}
	receiptFor(t, ctx, b, mark, types.ReceiptTypeRead, id)

	status, obj, raw := doJSON(t, "POST", base+"/reinstall", "")
	if status != 200 || obj["lid"] != ct.LID().String() || fmt.Sprint(obj["dropped"]) != "[]" {
		t.Fatalf("reinstall: %d %s", status, raw)
	}
	waitEvent[*events.IdentityChange](t, ctx, b.rec, mark)
}
