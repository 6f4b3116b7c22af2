// Package proc runs the built programs (blacksky, blacksky-sandbox, a bot
// binary) as an operator would, for the tests that drive them and for the
// chaos and soak harnesses: one launcher for all of them.
//
// A Process is started in a process group of its own (a Ctrl-C in the
// harness's terminal reaches only the harness, which decides how its
// children end) with exactly the environment it is given. Its stdout and
// stderr go, interleaved as written, into one buffer that any goroutine may
// read while the process runs; with Options.LogFile they also go to that
// file and the buffer keeps only the last TailBytes, so an hours-long run
// does not grow in memory. Every wait has a deadline and ends early, with
// an error naming the process and the end of its output, when a process
// that was to produce the awaited thing exits; nothing here sleeps for
// synchronisation.
//
// Start is for the harnesses: the caller ends what it starts (Kill, Stop).
// StartT is for tests: the process group is killed when the test ends, and
// the output is logged when the test failed.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options say how a program is started.
type Options struct {
	Args []string
	// Env is the whole environment of the process (see Env); nothing of
	// the caller's environment leaks in.
	Env []string
	// Dir is the working directory; empty is the caller's.
	Dir string
	// LogFile, when set, receives the output too (appended, so a program
	// restarted into the same file keeps its history), and the in-memory
	// output is bounded to its last TailBytes.
	LogFile string
	// Credential runs the process as another user (root only), for the
	// tests of a data directory the process may not write.
	Credential *syscall.Credential
}

// TailBytes is how much of a process's output is kept in memory when it
// also goes to a log file, and how much an error quotes.
const TailBytes = 64 << 10

// quoteBytes is how much of the output an error message quotes.
const quoteBytes = 2000

// Process is one running (or ended) program.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{}
}

// Start runs bin with opts. The caller ends the process (Kill, Stop).
func Start(bin string, opts Options) (*Process, error) {
	cmd := exec.Command(bin, opts.Args...)
	cmd.Env = opts.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would be the caller's environment
	}
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: opts.Credential}
	out := &output{changed: make(chan struct{})}
	var logf *os.File
	if opts.LogFile != "" {
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open the log of %s: %w", filepath.Base(bin), err)
		}
		logf, out.file, out.limit = f, f, TailBytes
	}
	// One writer for both streams: exec gives the child a single pipe, so
	// the lines stay in the order the program wrote them.
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s %s: %w", bin, strings.Join(opts.Args, " "), err)
	}
	p := &Process{name: filepath.Base(bin), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// StartT runs bin with opts for the test t, failing it when bin cannot
// start. When t ends, the process group is killed and waited for, and the
// output is logged if t failed.
func StartT(t testing.TB, bin string, opts Options) *Process {
	t.Helper()
	p, err := Start(bin, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.Output())
		}
	})
	return p
}

// Env is the minimal environment of a child: PATH (to find what the program
// runs), HOME and vars, in a stable order.
func Env(home string, vars map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a
// program to listen on.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Name is the program's file name, for messages.
func (p *Process) Name() string { return p.name }

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is what the process has written so far on stdout and stderr (its
// last TailBytes with a log file).
func (p *Process) Output() string { return p.out.String() }

// Tail is the end of the output, for an error message.
func (p *Process) Tail() string {
	s := p.Output()
	if len(s) > quoteBytes {
		s = s[len(s)-quoteBytes:]
	}
	return s
}

// Signal sends sig to the process itself (not its group): what an operator's
// SIGTERM or a crash's SIGKILL does to the program.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}

// Kill ends the whole process group with SIGKILL and waits for the process.
// A process already waited for is left alone: its group id may be reused.
func (p *Process) Kill() {
	if !p.Exited() {
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills.
func (p *Process) Stop(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	if _, err := p.Wait(grace); err != nil {
		p.Kill()
	}
}

// Done is closed when the process has exited and its output is all read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit and returns its exit code (-1
// for a process ended by a signal).
func (p *Process) Wait(d time.Duration) (int, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-timer.C:
		return -1, fmt.Errorf("%s did not exit within %s", p.name, d)
	}
}

// State is how the process ended ("exit status 1", "signal: killed"); nil
// while it runs.
func (p *Process) State() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.cmd.ProcessState
}

// WaitOutput waits up to d for the output to contain s. It wakes on every
// write, and fails at once when the process exits without having written s.
func (p *Process) WaitOutput(d time.Duration, s string) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		found, changed := p.out.contains(s)
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if found, _ := p.out.contains(s); found {
				return nil
			}
			return p.exitedWhile(fmt.Sprintf("%q in its output", s))
		case <-timer.C:
			return fmt.Errorf("timed out after %s waiting for %q in the output of %s:\n%s", d, s, p.name, p.Tail())
		}
	}
}

func (p *Process) exitedWhile(what string) error {
	return fmt.Errorf("%s exited (%s) while waiting for %s:\n%s", p.name, p.cmd.ProcessState, what, p.Tail())
}

// pollEvery is how often WaitFor asks its condition again.
const pollEvery = 20 * time.Millisecond

// WaitFor asks cond every 20 ms until it holds. It fails when d passes or
// ctx ends first, or when one of procs (the processes cond depends on)
// exits first.
func WaitFor(ctx context.Context, d time.Duration, what string, cond func() bool, procs ...*Process) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		for _, p := range procs {
			if p.Exited() {
				return p.exitedWhile(what)
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("timed out after %s waiting for %s", d, what)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
