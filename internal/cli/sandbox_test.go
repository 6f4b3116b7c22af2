package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testkit/proc"
)

// control calls the sandbox's control API and decodes the JSON answer; a
// transport error is status 0, so it can be polled while the sandbox starts.
func control(t *testing.T, base, method, path string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// The README's development loop: a sandbox in one terminal, the bot in
// another, paired through the control API.
func TestBotAgainstSandboxProcess(t *testing.T) {
	sb := startSandbox(t, "15550000002")
	sbURL := sb.url
	bot := start(t, map[string]string{"DATA_DIR": t.TempDir(), "WA_SANDBOX": sbURL, "WA_SANDBOX_TRUST": sb.trust})
	pairThroughControlAPI(t, sb, bot)
	if !strings.Contains(bot.Output(), "NOT talking to WhatsApp") {
		t.Error("the bot does not say loudly that it talks to a sandbox")
	}

	var sent struct{ ID string }
	control(t, sbURL, "POST", "/control/contacts/15550000002/send", map[string]string{"text": "hello bot"}, &sent)
	waitFor(t, "the bot's receipt for the contact's message", func() bool {
		var receipts []struct{ ID string }
		control(t, sbURL, "GET", "/control/contacts/15550000002/receipts", nil, &receipts)
		return len(receipts) > 0 && receipts[0].ID == sent.ID
	}, bot)
	if !strings.Contains(bot.Output(), "message received") {
		t.Error("the bot did not log the contact's message")
	}

	// A drop is redialled at once (a few ms here, too short to poll for a
	// 503): the sandbox sees a new login, and /readyz is 200 again.
	var before []struct{ Seq uint64 }
	control(t, sbURL, "GET", "/control/events?since=0", nil, &before)
	var last uint64
	if len(before) > 0 {
		last = before[len(before)-1].Seq
	}
	control(t, sbURL, "POST", "/control/faults", map[string]string{"kind": "drop"}, nil)
	waitFor(t, "a login after the drop", func() bool {
		var evs []struct{ Kind string }
		control(t, sbURL, "GET", fmt.Sprintf("/control/events?since=%d", last), nil, &evs)
		for _, e := range evs {
			if e.Kind == "login" {
				return true
			}
		}
		return false
	}, bot)
	bot.waitHTTP(t, "/readyz", http.StatusOK)

	// The API queues a message and reports its delivery.
	botURL := fmt.Sprintf("http://127.0.0.1:%d", bot.port)
	var queued struct {
		ID   int64  `json:"id"`
		WAID string `json:"wa_id"`
	}
	if code := control(t, botURL, "POST", "/api/v1/messages", map[string]string{"to": "15550000002", "text": "hello contact"}, &queued); code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/messages: %d", code)
	}
	waitFor(t, "the API's message to be sent", func() bool {
		var m struct{ State string }
		control(t, botURL, "GET", fmt.Sprintf("/api/v1/messages/%d", queued.ID), nil, &m)
		return sentStates[m.State]
	}, bot)
	var in []struct{ ID, Text string }
	control(t, sbURL, "GET", "/control/contacts/15550000002/inbox", nil, &in)
	if len(in) != 1 || in[0].ID != queued.WAID || in[0].Text != "hello contact" {
		t.Errorf("contact inbox = %+v; want the API's message once under %s", in, queued.WAID)
	}
}

// waitFor polls cond until it holds, failing after a deadline or when one
// of the processes exits.
func waitFor(t *testing.T, what string, cond func() bool, procs ...*process) {
	t.Helper()
	ps := make([]*proc.Process, len(procs))
	for i, p := range procs {
		ps[i] = p.Process
	}
	if err := proc.WaitFor(context.Background(), 20*time.Second, what, cond, ps...); err != nil {
		t.Fatal(err)
	}
}

// The simulator moved to its own program: the old commands say where, in
// one line, and change nothing.
func TestSandboxCommandsSayWhereTheyMoved(t *testing.T) {
	for _, cmd := range []string{"sandbox", "demo"} {
		code, stdout, stderr := runCLI(t, nil, cmd)
		if code != exitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "go run ./cmd/blacksky-sandbox") {
			t.Errorf("blacksky %s: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
	}
}
