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

func TestDemoRunsToCompletion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "demo")
	if code != exitOK {
		t.Fatalf("demo exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"paired as", "contact decrypted", "reconnected", "bot received", "demo finished"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo narration lacks %q:\n%s", want, stdout)
		}
	}
}

// A bad flag is one line and exit 2; --help lists the flags, the trust file's among them.
func TestFlags(t *testing.T) {
	code, stdout, stderr := runCLI(t, "--listen")
	if code != exitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 {
		t.Errorf("bad flag: exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "--help")
	if code != exitOK || !strings.Contains(stdout, "-trust-file") || !strings.Contains(stdout, "demo") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
}
