// Package cmdline is what the command lines (blacksky and any bot binary,
// blacksky-sandbox) share: their exit codes and how a command's flags are
// parsed and refused, so every program says what to fix the same way: one
// line on stderr and exit 2 for bad input, the usage on stdout and exit 0
// for --help.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes: 2 means the command line or configuration needs fixing.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Command is a command being parsed: Name as the user types it
// ("blacksky send"), and where its output goes.
type Command struct {
	Name           string
	Stdout, Stderr io.Writer
	// Args names the arguments allowed after the flags, for the usage line
	// ("[file]"); empty: none are allowed. At most one is.
	Args string
	// Usage are more lines printed after the usage line on --help.
	Usage []string
}

// Parse parses args into fs. It returns ExitOK after printing the usage
// and the flags for --help, ExitUsage after one line saying what is wrong
// (a bad flag, an unexpected argument), and -1 when the command goes on.
func (c Command) Parse(fs *flag.FlagSet, args []string) int {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	allowed := 0
	if c.Args != "" {
		allowed = 1
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		line := "Usage: " + c.Name + " [flags]"
		if c.Args != "" {
			line += " " + c.Args
		}
		fmt.Fprintln(c.Stdout, line)
		for _, l := range c.Usage {
			fmt.Fprintln(c.Stdout, l)
		}
		fs.SetOutput(c.Stdout)
		fs.PrintDefaults()
		return ExitOK
	case err != nil:
		fmt.Fprintf(c.Stderr, "%s: %v; run '%s --help'\n", c.Name, err, c.Name)
		return ExitUsage
	case fs.NArg() > allowed:
		fmt.Fprintf(c.Stderr, "%s: unexpected argument %q; run '%s --help'\n", c.Name, fs.Arg(allowed), c.Name)
		return ExitUsage
	}
	return -1
}
