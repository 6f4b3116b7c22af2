package blacksky_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/blacksky-bot/blacksky"
)

// A bot binary with one command of its own beside the built-in ones.
func Example() {
	os.Exit(blacksky.Main(blacksky.Command{
		Name: "echo", Usage: "<text>", Help: "repeat the text back",
		Run: func(ctx context.Context, c *blacksky.Context) error {
			return c.Reply(ctx, c.Raw)
		},
	}))
}

// A command for the owners only (OWNER_NUMBER), in private chats, with
// its arguments.
func ExampleCommand() {
	_ = blacksky.Command{
		Name: "shout", OwnerOnly: true, Scope: blacksky.PrivateOnly, Usage: "<words>",
		Help: "answer in capitals",
		Run: func(ctx context.Context, c *blacksky.Context) error {
			if len(c.Args) == 0 {
				return c.Reply(ctx, fmt.Sprintf("usage: %sshout <words>", c.Prefix))
			}
			return c.Reply(ctx, strings.ToUpper(strings.Join(c.Args, " ")))
		},
	}
}
