package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Scope says in which chats a command may be used.
type Scope int

// The scopes of a command.
const (
	Anywhere    Scope = iota // private chats and groups
	GroupsOnly               // only in groups
	PrivateOnly              // only in private chats
)

// Command is a command users can call as PREFIX+Name.
type Command struct {
	// Name is what follows the prefix; matched case-insensitively.
	Name string
	// Aliases are other names for the same command.
	Aliases []string
	// Usage, if set, describes the arguments in the menu, e.g. "<text>".
	Usage string
	// Help is one line for the menu.
	Help string
	// OwnerOnly refuses the command to everyone but the owners (OWNER_NUMBER).
	OwnerOnly bool
	// Scope limits the chats the command works in.
	Scope Scope
	// Run does the work; it answers with c.Reply. A returned error is logged
	// and answered with an error reply; so is a panic.
	Run func(ctx context.Context, c *Context) error
}

// ErrDuplicate refuses a command whose name or alias is already registered.
var ErrDuplicate = errors.New("command name already registered")

// Register adds cmd to the router; it refuses an empty or spaced name,
// a missing Run and a name or alias that is taken. Register before Run.
func (b *Bot) Register(cmd Command) error {
	if cmd.Run == nil {
		return fmt.Errorf("register command %q: Run is nil", cmd.Name)
	}
	names := append([]string{cmd.Name}, cmd.Aliases...)
	for i, n := range names {
		n = strings.ToLower(n)
		if n == "" || strings.IndexFunc(n, unicode.IsSpace) >= 0 {
			return fmt.Errorf("register command %q: name or alias %q must be non-empty without spaces", cmd.Name, n)
		}
		names[i] = n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		if _, ok := b.commands[n]; ok {
			return fmt.Errorf("register command %q: %w: %q", cmd.Name, ErrDuplicate, n)
		}
	}
	cmd.Name = names[0]
	cmd.Aliases = names[1:]
	c := &cmd
	for _, n := range names {
		b.commands[n] = c
	}
	b.order = append(b.order, c)
	return nil
}

// MustRegister is Register that panics on error, for commands fixed at
// compile time.
func (b *Bot) MustRegister(cmd Command) {
	if err := b.Register(cmd); err != nil {
		panic(err)
	}
}

// lookup returns the command registered under name (lowercase).
func (b *Bot) lookup(name string) (*Command, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	c, ok := b.commands[name]
	return c, ok
}

// Commands lists the registered commands in registration order.
func (b *Bot) Commands() []Command {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Command, len(b.order))
	for i, c := range b.order {
		out[i] = *c
	}
	return out
}

// allowed reports whether the command may run here.
func (c *Command) allowed(isGroup bool) bool {
	switch c.Scope {
	case GroupsOnly:
		return isGroup
	case PrivateOnly:
		return !isGroup
	}
	return true
}

// CheckCommands reports the first of cmds that Register would refuse beside
// the built-in commands and the ones before it, without a bot: a program
// can refuse a bad command before it opens anything.
func CheckCommands(cmds ...Command) error {
	b := &Bot{commands: make(map[string]*Command)}
	b.registerBuiltins()
	for _, c := range cmds {
		if err := b.Register(c); err != nil {
			return err
		}
	}
	return nil
}
