package cli

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A bot binary of one's own (examples/echo-bot, built on the public
// package blacksky, no fork) runs the whole runtime: it pairs, answers its
// own command and the built-in ones.
func TestOwnBotBinaryAnswersItsCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "echo-bot")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/blacksky-bot/blacksky/examples/echo-bot").CombinedOutput(); err != nil {
		t.Fatalf("build examples/echo-bot: %v\n%s", err, out)
	}
	const contact = "15550000002"
	sb := startSandbox(t, contact)
	bot := startProgram(t, bin, botEnv(t, sb, ""))
	pairThroughControlAPI(t, sb, bot)
	for _, text := range []string{".echo hello from my own bot", ".ping"} {
		control(t, sb.url, "POST", "/control/contacts/"+contact+"/send", map[string]string{"text": text}, nil)
	}
	waitFor(t, "the echo and the pong", func() bool {
		echo, pong := false, false
		for _, m := range inbox(t, sb, contact) {
			echo = echo || m.Text == "hello from my own bot"
			pong = pong || strings.Contains(m.Text, "Pong")
		}
		return echo && pong
	}, bot)
}
