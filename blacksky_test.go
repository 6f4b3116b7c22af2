package blacksky_test

import (
	"context"
	"errors"
	"testing"

	"github.com/blacksky-bot/blacksky"
	"github.com/blacksky-bot/blacksky/internal/bot"
)

// A command that cannot be registered stops the program before anything
// runs, with the reason.
func TestBadCommandsAreRefusedBeforeAnythingRuns(t *testing.T) {
	run := func(context.Context, *blacksky.Context) error { return nil }
	for _, tc := range []struct {
		name string
		cmds []blacksky.Command
	}{
		{"taken by a built-in", []blacksky.Command{{Name: "ping", Run: run}}},
		{"twice", []blacksky.Command{{Name: "echo", Run: run}, {Name: "ECHO", Run: run}}},
		{"no run", []blacksky.Command{{Name: "echo"}}},
		{"spaced", []blacksky.Command{{Name: "two words", Run: run}}},
	} {
		if err := bot.CheckCommands(tc.cmds...); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := bot.CheckCommands(blacksky.Command{Name: "echo", Aliases: []string{"say"}, Run: run}); err != nil {
		t.Errorf("a good command refused: %v", err)
	}
	if err := bot.CheckCommands(blacksky.Command{Name: "menu", Run: run}); !errors.Is(err, bot.ErrDuplicate) {
		t.Errorf("menu: %v, want ErrDuplicate", err)
	}
}
