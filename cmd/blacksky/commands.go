package main

import (
	"github.com/blacksky-bot/blacksky/internal/bot"
)

// registerCommands adds this deployment's own commands to the built-in ones
// (menu, help, ping, status, and the owner's queue, backup, reconnect).
// Add yours here; examples/echo-command shows one, and the README explains
// the Command fields.
func registerCommands(b *bot.Bot) {
	_ = b
}
