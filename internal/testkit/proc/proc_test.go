package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is the program these tests launch: with PROC_HELPER set
// it plays one of the parts below instead of running the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("PROC_HELPER") {
	case "":
		os.Exit(m.Run())
	case "env":
		fmt.Println(strings.Join(os.Environ(), "\n"))
	case "both":
		fmt.Fprintln(os.Stdout, "to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(3)
	case "term":
		// Says it is ready, then exits 0 on SIGTERM, as blacksky does.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready")
		<-sigs
		fmt.Println("stopping")
	case "hang":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "spawn":
		// A child in this process's group, as a program's helper would be.
		child := exec.Command(os.Args[0])
		child.Env = []string{"PROC_HELPER=hang"}
		if err := child.Start(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("child %d\n", child.Process.Pid)
		child.Wait()
	case "lots":
		line := strings.Repeat("x", 1023) + "\n"
		for range 4 * TailBytes / len(line) {
			os.Stdout.WriteString(line)
		}
		fmt.Println("the end")
	}
}

func helper(t *testing.T, part string, opts Options) *Process {
	t.Helper()
	opts.Env = append(opts.Env, "PROC_HELPER="+part)
	return StartT(t, os.Args[0], opts)
}

func TestOutputHasBothStreamsAndTheExitCode(t *testing.T) {
	p := helper(t, "both", Options{})
	code, err := p.Wait(10 * time.Second)
	if err != nil || code != 3 {
		t.Fatalf("Wait = %d, %v; want exit 3", code, err)
	}
	if out := p.Output(); out != "to stdout\nto stderr\n" {
		t.Errorf("output %q; want both lines in the order written", out)
	}
}

func TestEnvIsAllTheChildSees(t *testing.T) {
	t.Setenv("PROC_LEAK", "from the parent")
	home := t.TempDir()
	p := helper(t, "env", Options{Env: Env(home, map[string]string{"B": "2", "A": "1"})})
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("PATH=%s\nHOME=%s\nA=1\nB=2\nPROC_HELPER=env\n", os.Getenv("PATH"), home)
	if out := p.Output(); out != want {
		t.Errorf("environment %q; want %q", out, want)
	}
}

func TestSIGTERMAfterTheLogLine(t *testing.T) {
	p := helper(t, "term", Options{})
	if err := p.WaitOutput(10*time.Second, "ready"); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("Wait = %d, %v; want exit 0", code, err)
	}
	if !strings.HasSuffix(p.Output(), "stopping\n") || p.State().String() != "exit status 0" {
		t.Errorf("output %q, state %v", p.Output(), p.State())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("a signal to an ended process: %v; want nil", err)
	}
}

// A wait for a line the process will never write ends when it exits, with
// its output, not at the deadline.
func TestWaitsEndWhenTheProcessExits(t *testing.T) {
	p := helper(t, "both", Options{})
	start := time.Now()
	err := p.WaitOutput(time.Minute, "never written")
	if err == nil || !strings.Contains(err.Error(), "exited (exit status 3)") || !strings.Contains(err.Error(), "to stderr") {
		t.Errorf("WaitOutput = %v; want the exit and the output", err)
	}
	err = WaitFor(context.Background(), time.Minute, "something", func() bool { return false }, p)
	if err == nil || !strings.Contains(err.Error(), "while waiting for something") {
		t.Errorf("WaitFor = %v; want the exit", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("waited %s", waited)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p := helper(t, "hang", Options{})
	if err := p.WaitOutput(10*time.Second, "ready"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(100 * time.Millisecond); err == nil {
		t.Fatal("a hanging process exited")
	}
	p.Stop(200 * time.Millisecond)
	if st := p.State(); st == nil || st.String() != "signal: killed" {
		t.Errorf("state after Stop: %v; want killed", st)
	}
}

// With a log file the file has everything and memory only the tail.
func TestLogFileHasAllAndMemoryTheTail(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	p := helper(t, "lots", Options{LogFile: log})
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 4*TailBytes || !strings.HasSuffix(string(b), "x\nthe end\n") {
		t.Errorf("log file has %d bytes; want all %d", len(b), 4*TailBytes)
	}
	out := p.Output()
	if len(out) < TailBytes || len(out) > 2*TailBytes || !strings.HasSuffix(out, "the end\n") {
		t.Errorf("output in memory has %d bytes; want the last %d to %d", len(out), TailBytes, 2*TailBytes)
	}
	if tail := p.Tail(); len(tail) != quoteBytes || !strings.HasSuffix(tail, "the end\n") {
		t.Errorf("tail of %d bytes", len(tail))
	}
}

// Kill (and so a test's end) ends the process's children too: the whole
// group gets the SIGKILL.
func TestKillEndsTheProcessGroup(t *testing.T) {
	p := helper(t, "spawn", Options{})
	if err := p.WaitOutput(10*time.Second, "\n"); err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(p.Output(), "child ")))
	if err != nil {
		t.Fatalf("no child pid in %q", p.Output())
	}
	p.Kill()
	// Gone, or a zombie that whoever inherited it has not reaped yet.
	gone := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		_, after, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(after, "Z")
	}
	if err := WaitFor(context.Background(), 10*time.Second, "the child to end", gone); err != nil {
		t.Fatal(err)
	}
}
