package cli

import (
	"github.com/blacksky-bot/blacksky/internal/bot"
)

// registerCommands adds the program's own commands to the built-in ones
// (menu, help, ping, status, and the owner's queue, backup, reconnect):
// Program.Register, set by Main; nil adds none.
var registerCommands func(*bot.Bot)
