// Package blacksky builds a WhatsApp bot binary with your own commands on
// the blacksky runtime: the connection supervisor, the durable queues, the
// session in the database, the HTTP API and the whole command line (run,
// pair, doctor, send, queue, backup, restore) of the blacksky binary, which
// is itself one program built on this package (cmd/blacksky).
//
//	func main() {
//		os.Exit(blacksky.Main(blacksky.Command{
//			Name: "echo", Usage: "<text>", Help: "repeat the text back",
//			Run: func(ctx context.Context, c *blacksky.Context) error {
//				return c.Reply(ctx, c.Raw)
//			},
//		}))
//	}
//
// Configuration comes from the environment, as for the blacksky binary (see
// the README). A command's reply goes through the durable outgoing queue:
// it is stored before it is sent, sent once, and survives restarts; a
// message handled again after a crash queues no second reply. A command
// that returns an error or panics is logged and answered with an error
// reply, and the bot keeps running.
package blacksky

import (
	"fmt"
	"os"

	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/cli"
)

// Command is one command of the bot: its name after the prefix (PREFIX,
// "." by default), aliases, help for the menu, who may call it and where,
// and what it does.
type Command = bot.Command

// Context is what a command sees of the message that called it: the
// message (chat, sender, time), the arguments, whether the sender is an
// owner, and Reply.
type Context = bot.Context

// Message is an incoming message as the bot stored it.
type Message = bot.Message

// Scope limits the chats a command works in.
type Scope = bot.Scope

// The scopes of a command.
const (
	Anywhere    = bot.Anywhere    // private chats and groups
	GroupsOnly  = bot.GroupsOnly  // only in groups
	PrivateOnly = bot.PrivateOnly // only in private chats
)

// Program is a bot binary. The zero Program is the blacksky binary itself.
type Program struct {
	// Commands are added to the built-in ones (menu, help, ping, status,
	// and the owner's queue, backup, reconnect).
	Commands []Command
	// Version is what the binary calls itself; empty: derived from Go's
	// build information (the module version, or the commit it was built
	// from).
	Version string
}

// Main runs the program's command line on os.Args[1:] until a signal or the
// command ends it, and returns the exit code for os.Exit. A command that
// cannot be registered (an empty or taken name, no Run) stops the program
// before anything runs, exit 2 with one line.
func (p Program) Main() int {
	if err := bot.CheckCommands(p.Commands...); err != nil {
		fmt.Fprintf(os.Stderr, "blacksky: %v\n", err)
		return 2
	}
	return cli.Program{Version: p.Version, Register: func(b *bot.Bot) {
		for _, c := range p.Commands {
			b.MustRegister(c)
		}
	}}.Main(os.Args[1:])
}

// Main runs a bot binary with commands added to the built-in ones; see
// Program.Main.
func Main(commands ...Command) int { return Program{Commands: commands}.Main() }
