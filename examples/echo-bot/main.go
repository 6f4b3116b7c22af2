// Command echo-bot is a bot binary of its own, built on the public package
// blacksky: the whole blacksky runtime and command line (run, pair, doctor,
// send, queue, ...) with one command added, ".echo <text>", which answers
// with the text. Configure and run it like blacksky itself:
//
//	go run ./examples/echo-bot            # then pair on http://localhost:8080/pair
package main

import (
	"context"
	"os"

	"github.com/blacksky-bot/blacksky"
)

func main() {
	os.Exit(blacksky.Main(blacksky.Command{
		Name: "echo", Aliases: []string{"say"}, Usage: "<text>", Help: "repeat the text back",
		Scope: blacksky.Anywhere, // or GroupsOnly, PrivateOnly; OwnerOnly: true for the owners only
		Run: func(ctx context.Context, c *blacksky.Context) error {
			// The reply is stored in the durable queue before it is sent,
			// and sent once even if this message is handled again.
			return c.Reply(ctx, c.Raw)
		},
	}))
}
