package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), &environment{stdout: &stdout, stderr: &stderr}, args)
	return code, stdout.String(), stderr.String()
}

// The demo is the product's story, in order: blacksky run itself (built by
// the product's composition root) pairs, sends through its queue to the
// contact, sees its delivery and read receipts, reconnects after a drop, answers a command, and stops cleanly
// without logging out; each line is printed only once the bot's API and the
// sandbox both show it.
func TestDemoRunsToCompletion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "demo")
	if code != exitOK {
		t.Fatalf("demo exit %d\n%s\n%s", code, stdout, stderr)
	}
	rest := stdout
	for _, want := range []string{"paired as", "the queue sent it and the contact decrypted", "(API: delivered)",
		"(API: read", "reconnected", "the bot replied through its queue (API: delivered)", "Pong", "shut down cleanly", "no logout", "demo finished"} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("demo narration lacks %q after the steps before it:\n%s", want, stdout)
		}
		rest = rest[i+len(want):]
	}
}

// A bad flag is one line and exit 2; --help lists the flags, the trust file's among them.
func TestFlags(t *testing.T) {
	code, stdout, stderr := runCLI(t, "--listen")
	if code != exitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 {
		t.Errorf("bad flag: exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "--latency", "-1s")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "--latency") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("negative latency: exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "--help")
	if code != exitOK || !strings.Contains(stdout, "-trust-file") || !strings.Contains(stdout, "demo") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
}
