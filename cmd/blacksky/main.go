// Command blacksky runs a WhatsApp bot that stays connected and never loses
// a message, and the operator tools around it. It is one program built on
// the public package blacksky; a bot with commands of its own is another
// (examples/echo-command).
package main

import (
	"os"

	"github.com/blacksky-bot/blacksky"
)

// version is what this binary calls itself when a build sets it with
// -ldflags "-X main.version=v1.2.3" (the Dockerfile's VERSION build
// argument, Heroku's GO_LINKER_SYMBOL); empty, Go's build information says.
var version string

func main() {
	os.Exit(blacksky.Program{Version: version}.Main())
}
