package cmdline

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func parse(c Command, args ...string) (code int, stdout, stderr string, fs *flag.FlagSet) {
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("all-dead", false, "every dead message")
	return c.Parse(fs, args), out.String(), errOut.String(), fs
}

// Bad input is one line on stderr naming the command and how to get help,
// exit 2; --help is the usage and the flags on stdout, exit 0; good input
// goes on (-1) with the flags set.
func TestParse(t *testing.T) {
	send := Command{Name: "blacksky send"}
	if code, out, errs, _ := parse(send, "--bogus"); code != ExitUsage || out != "" ||
		errs != "blacksky send: flag provided but not defined: -bogus; run 'blacksky send --help'\n" {
		t.Errorf("bad flag: %d %q %q", code, out, errs)
	}
	if code, _, errs, _ := parse(send, "extra"); code != ExitUsage || !strings.Contains(errs, `unexpected argument "extra"`) || strings.Count(errs, "\n") != 1 {
		t.Errorf("stray argument: %d %q", code, errs)
	}
	restore := Command{Name: "blacksky restore", Args: "[file]", Usage: []string{"  restores the newest backup without a file"}}
	if code, out, _, _ := parse(restore, "--help"); code != ExitOK || !strings.HasPrefix(out, "Usage: blacksky restore [flags] [file]\n  restores") || !strings.Contains(out, "-all-dead") {
		t.Errorf("--help: %d %q", code, out)
	}
	if code, _, _, fs := parse(restore, "--all-dead", "backup.bin"); code != -1 || fs.Arg(0) != "backup.bin" {
		t.Errorf("one allowed argument: %d %v", code, fs.Args())
	}
	if code, _, errs, _ := parse(restore, "a", "b"); code != ExitUsage || !strings.Contains(errs, `unexpected argument "b"`) {
		t.Errorf("a second argument: %d %q", code, errs)
	}
}
