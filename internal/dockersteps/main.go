// Command dockersteps runs a Dockerfile's build without Docker, for CI on a
// machine that can reach no container registry (so cannot pull the base
// images): it lays out the build context `docker build` would send from a
// fresh clone (the repository's files less .dockerignore), then runs each
// stage's instructions in order in a directory of its own that stands for
// the stage's file system: COPY and ADD copy from the context or an earlier
// stage, RUN runs on this machine (with its Go) in the stage's WORKDIR, ARG
// and ENV set the environment. A runtime stage is checked for what can be
// checked without its base image: the programs its ENTRYPOINT and
// HEALTHCHECK start exist and are executable, and --smoke runs the
// ENTRYPOINT once with the given arguments.
//
//	go run ./internal/dockersteps [--dir .] [--build-arg NAME=VALUE] [--smoke version] [--keep]
//
// What it cannot see: differences between this machine and the base image
// (tool versions, users). It refuses what it cannot emulate rather than
// pretend: RUN lines that name absolute paths (they would touch this
// machine), RUN after USER, heredocs, unknown instructions. Exit 1 on a
// failed step with the Dockerfile line, 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

type buildArgs map[string]string

func (a buildArgs) String() string { return fmt.Sprint(map[string]string(a)) }

func (a buildArgs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want NAME=VALUE")
	}
	a[k] = val
	return nil
}

// options are one run's settings.
type options struct {
	dir       string // the build context: the repository, with its Dockerfile
	buildArgs buildArgs
	smoke     []string // arguments to run the final ENTRYPOINT with; nil: do not run it
	keep      bool
}

func run(ctx context.Context, args []string, log io.Writer) int {
	opts := options{buildArgs: buildArgs{}}
	fs := flag.NewFlagSet("dockersteps", flag.ContinueOnError)
	fs.SetOutput(log)
	fs.StringVar(&opts.dir, "dir", ".", "the build context, holding the Dockerfile and .dockerignore")
	fs.Var(opts.buildArgs, "build-arg", "NAME=VALUE, as docker build --build-arg (repeatable)")
	smoke := fs.String("smoke", "", "run the final stage's ENTRYPOINT with these (space-separated) arguments")
	fs.BoolVar(&opts.keep, "keep", false, "keep the temporary directory and print where it is")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *smoke != "" {
		opts.smoke = strings.Fields(*smoke)
	}
	if err := build(ctx, opts, log); err != nil {
		fmt.Fprintf(log, "dockersteps: %v\n", err)
		return 1
	}
	return 0
}

// build runs the Dockerfile in opts.dir in a new temporary directory.
func build(ctx context.Context, opts options, log io.Writer) error {
	f, err := os.Open(filepath.Join(opts.dir, "Dockerfile"))
	if err != nil {
		return err
	}
	stages, err := parseDockerfile(f)
	f.Close()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dockersteps-")
	if err != nil {
		return err
	}
	if opts.keep {
		fmt.Fprintf(log, "dockersteps: working in %s (kept)\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &builder{context: filepath.Join(tmp, "context"), root: tmp, buildArgs: opts.buildArgs, log: log, stages: map[string]*stageFS{}}
	files, ignored, err := contextFiles(opts.dir)
	if err != nil {
		return err
	}
	for _, name := range files {
		info, err := os.Lstat(filepath.Join(opts.dir, name))
		if err != nil {
			return err
		}
		if err := copyEntry(filepath.Join(opts.dir, name), filepath.Join(b.context, name), info); err != nil {
			return fmt.Errorf("lay out the build context: %w", err)
		}
	}
	fmt.Fprintf(log, "== build context: %d files (%d left out by .dockerignore)\n", len(files), ignored)
	var last *stageFS
	for i, st := range stages {
		if last, err = b.runStage(ctx, i, st); err != nil {
			return err
		}
		b.stages[strconv.Itoa(i)] = last
		if st.name != "" {
			b.stages[st.name] = last
		}
	}
	if err := checkFinal(last); err != nil {
		return fmt.Errorf("final stage (%s): %w", stages[len(stages)-1].from, err)
	}
	if opts.smoke != nil && len(last.entry) > 0 {
		cmd := exec.CommandContext(ctx, last.host(last.entry[0]), append(last.entry[1:], opts.smoke...)...)
		cmd.Stdout, cmd.Stderr = log, log
		fmt.Fprintf(log, "== %s %s\n", strings.Join(last.entry, " "), strings.Join(opts.smoke, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("the final ENTRYPOINT with %q: %w", opts.smoke, err)
		}
	}
	fmt.Fprintln(log, "== the Dockerfile's steps all passed")
	return nil
}
