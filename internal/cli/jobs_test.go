package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// blacksky jobs shows and repairs every kind of work: a dead incoming
// message is listed with its error, retried and purged from the shell, as
// a dead outgoing message is with blacksky queue.
func TestJobsCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := testkit.OpenStore(t, store.Options{SQLitePath: filepath.Join(dir, "blacksky.db")})
	testkit.Migrate(t, st)
	b := bot.New(bot.Options{DB: st.DB(), Engine: st.Engine(), Session: "default"})
	now := time.Now()
	for _, id := range []string{"A1", "A2"} {
		if _, err := b.Store(ctx, bot.Message{Chat: "15550000002@s.whatsapp.net", MsgID: id, Sender: "15550000002@s.whatsapp.net",
			Kind: "text", Text: "hi", SentAt: now, ReceivedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	q, _ := jobs.New(st.DB(), st.Engine(), bot.InboxTable, "default", nil)
	claimed, err := q.Claim(ctx, 1, "test", time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim %v %v", claimed, err)
	}
	if err := q.Bury(ctx, claimed[0], "disk full", nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	vars := map[string]string{"DATA_DIR": dir}

	code, out, errOut := runCLI(t, vars, "jobs")
	if code != exitOK || !strings.Contains(out, "incoming") || !strings.Contains(out, "dead 1") || !strings.Contains(out, "webhook") {
		t.Fatalf("jobs: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, vars, "jobs", "list", "incoming", "--state", "dead")
	if code != exitOK || !strings.Contains(out, "disk full") || strings.Count(out, "\n") != 2 {
		t.Fatalf("jobs list: exit %d\n%s", code, out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if code, _, errOut := runCLI(t, vars, "jobs", "purge", "incoming", "999"); code != exitUsage || strings.Count(errOut, "\n") != 1 {
		t.Errorf("purging an unknown id: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCLI(t, vars, "jobs", "retry", "incoming", id); code != exitOK || !strings.Contains(out, "retried incoming item "+id) {
		t.Errorf("retry: exit %d, %q", code, out)
	}
	if code, out, _ := runCLI(t, vars, "jobs", "list", "incoming", "--state", "dead"); code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("after the retry, failed: %q", out)
	}
	for _, args := range [][]string{{"jobs", "list"}, {"jobs", "list", "nope"}, {"jobs", "retry", "incoming"}, {"jobs", "list", "incoming", "--state", "sent"}} {
		if code, _, errOut := runCLI(t, vars, args...); code != exitUsage || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want 2 and one line", args, code, errOut)
		}
	}
	// Like send and queue: never a database of its own.
	empty := t.TempDir()
	if code, _, errOut := runCLI(t, map[string]string{"DATA_DIR": empty}, "jobs"); code != exitUsage || !strings.Contains(errOut, empty) {
		t.Errorf("jobs in an empty directory: exit %d, %q", code, errOut)
	}
}
