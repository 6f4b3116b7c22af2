package cli

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// reachoutStatus is /status's reachout_lock.
type reachoutStatus struct {
	Active    bool      `json:"active"`
	Until     time.Time `json:"until"`
	Announced bool      `json:"announced"`
	Refusals  int       `json:"refusals"`
}

func botReachout(t *testing.T, bot *process) reachoutStatus {
	t.Helper()
	var st struct {
		Lock *reachoutStatus `json:"reachout_lock"`
	}
	if code := control(t, botURL(bot), "GET", "/status", nil, &st); code != http.StatusOK || st.Lock == nil {
		t.Fatalf("/status: %d, reachout_lock %v", code, st.Lock)
	}
	return *st.Lock
}

// metricValue reads an unlabelled metric from /metrics; -1 when absent.
func metricValue(t *testing.T, bot *process, name string) float64 {
	t.Helper()
	resp, err := http.Get(botURL(bot) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

// waitsForLock waits until message m waits for the reach-out lock, and
// checks it does so without an attempt; it returns the message.
func waitsForLock(t *testing.T, bot *process, m map[string]any) map[string]any {
	t.Helper()
	var got map[string]any
	waitFor(t, fmt.Sprintf("message %v to wait for the reach-out lock", m["id"]), func() bool {
		got = getMessage(t, bot, m["id"])
		return got["state"] == "pending" && strings.HasPrefix(fmt.Sprint(got["last_error"]), "reach-out lock: waiting until ")
	}, bot)
	if got["attempts"] != 0.0 {
		t.Errorf("message %v waits with %v attempts; waiting is not an attempt", m["id"], got["attempts"])
	}
	return got
}

// WhatsApp's reach-out lock (issue 14): under it, messages to contacts who
// never wrote wait (untried, or refused once with 463 when the bot thought
// the contact had written), replies to contacts who wrote go out, the owner
// hears once per lock, /status and /metrics show it; when WhatsApp lifts it,
// or it reaches its announced end, each waiting message goes out once.
func TestReachoutLockHoldsOnlyNewContacts(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			owner, friend, stranger, pretender, late := "15550000009", "15550000002", "15550000003", "15550000004", "15550000005"
			sb := startSandbox(t, owner, friend, stranger, pretender, late)
			env := botEnv(t, sb, dbURL(t))
			env["OWNER_NUMBER"] = owner
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)

			// The owner and the friend write; the bot's inbox is how it knows.
			for _, who := range []string{owner, friend} {
				var sent struct{ ID string }
				if code := control(t, sb.url, "POST", "/control/contacts/"+who+"/send", map[string]string{"text": "hello bot"}, &sent); code != http.StatusOK {
					t.Fatalf("%s send: %d", who, code)
				}
				waitFor(t, "the bot's receipt for "+who, func() bool {
					var receipts []struct{ ID string }
					control(t, sb.url, "GET", "/control/contacts/"+who+"/receipts", nil, &receipts)
					return len(receipts) > 0 && receipts[0].ID == sent.ID
				}, bot)
			}
			// The pretender is in the inbox without having written to
			// WhatsApp (a row left from elsewhere): the bot will try it and
			// get WhatsApp's 463.
			execSQL(t, botDB(t, env), fmt.Sprintf(`INSERT INTO blacksky_inbox
				(session_id, chat, msg_id, sender, kind, sent_at, received_at, state, attempts, run_at, handled_at)
				VALUES ('e2e', '%s@s.whatsapp.net', 'PRETEND', '%s@s.whatsapp.net', 'text', 1, 1, 'handled', 1, 1, %d)`,
				pretender, pretender, time.Now().UnixMilli()))

			if code := control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "reachout_timelock", "duration": "1h"}, nil); code != http.StatusOK {
				t.Fatalf("inject reachout_timelock: %d", code)
			}
			var lock reachoutStatus
			waitFor(t, "/status to show the lock WhatsApp announced", func() bool {
				lock = botReachout(t, bot)
				return lock.Active
			}, bot)
			if !lock.Announced || time.Until(lock.Until) < 59*time.Minute || time.Until(lock.Until) > 61*time.Minute {
				t.Errorf("reachout_lock = %+v; want announced, ending in an hour", lock)
			}

			cold := postMessage(t, bot, stranger, "cold")
			warm := postMessage(t, bot, pretender, "thought warm")
			reply := postMessage(t, bot, friend, "reply")
			waitFor(t, "the reply to the friend", func() bool { return wasSent(getMessage(t, bot, reply["id"])) }, bot)
			waitsForLock(t, bot, cold)
			if got := waitsForLock(t, bot, warm); !strings.Contains(fmt.Sprint(got["last_error"]), "463") {
				t.Errorf("pretender's message last_error %q; want WhatsApp's 463", got["last_error"])
			}
			for _, who := range []string{stranger, pretender} {
				if in := inbox(t, sb, who); len(in) != 0 {
					t.Errorf("%s received %v under the lock", who, in)
				}
			}
			if n := metricValue(t, bot, "blacksky_reachout_lock_active"); n != 1 {
				t.Errorf("blacksky_reachout_lock_active = %v; want 1", n)
			}
			if n := metricValue(t, bot, "blacksky_reachout_lock_until_seconds"); n != float64(lock.Until.Unix()) {
				t.Errorf("blacksky_reachout_lock_until_seconds = %v; want %d", n, lock.Until.Unix())
			}
			if n := metricValue(t, bot, "blacksky_reachout_refusals_total"); n != 1 {
				t.Errorf("blacksky_reachout_refusals_total = %v; want the pretender's one", n)
			}
			waitFor(t, "the owner's alert", func() bool { return repliesContaining(t, sb, owner, "reach-out lock") == 1 }, bot)

			// WhatsApp lifts the lock early and says so: the waiting messages go at once.
			if code := control(t, sb.url, "DELETE", "/control/faults", nil, nil); code != http.StatusNoContent {
				t.Fatalf("clear faults: %d", code)
			}
			for _, m := range []map[string]any{cold, warm} {
				waitFor(t, fmt.Sprintf("message %v to be sent after the lock", m["id"]), func() bool { return wasSent(getMessage(t, bot, m["id"])) }, bot)
			}
			if lock := botReachout(t, bot); lock.Active {
				t.Errorf("reachout_lock = %+v after WhatsApp lifted it", lock)
			}

			// A short lock that runs out: WhatsApp says nothing at its end,
			// the bot goes by the announced time.
			if code := control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "reachout_timelock", "duration": "6s"}, nil); code != http.StatusOK {
				t.Fatalf("inject reachout_timelock: %d", code)
			}
			waitFor(t, "/status to show the second lock", func() bool { return botReachout(t, bot).Active }, bot)
			lateMsg := postMessage(t, bot, late, "after the lock")
			waitsForLock(t, bot, lateMsg)
			waitFor(t, "the message held by the second lock to be sent at its end", func() bool {
				return wasSent(getMessage(t, bot, lateMsg["id"]))
			}, bot)
			waitFor(t, "the owner's alert of the second lock", func() bool { return repliesContaining(t, sb, owner, "reach-out lock") == 2 }, bot)

			for who, want := range map[string]string{stranger: "cold", pretender: "thought warm", friend: "reply", late: "after the lock"} {
				if in := inbox(t, sb, who); len(in) != 1 || in[0].Text != want {
					t.Errorf("%s received %+v; want %q once", who, in, want)
				}
			}
			if n := repliesContaining(t, sb, owner, "reach-out lock"); n != 2 {
				t.Errorf("the owner got %d alerts; want one per lock", n)
			}
		})
	}
}
