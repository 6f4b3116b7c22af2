package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// builder runs the stages of one Dockerfile, each in a directory of its
// own under root that stands for the stage's file system.
type builder struct {
	context   string            // the build context, copied
	root      string            // one directory per stage below it
	buildArgs map[string]string // --build-arg values
	log       io.Writer
	stages    map[string]*stageFS // by name and by index
}

// stageFS is where a stage's files are, and its state while it runs.
type stageFS struct {
	root    string
	workdir string // inside the stage, absolute
	env     map[string]string
	entry   []string // ENTRYPOINT, exec form
	health  []string // HEALTHCHECK CMD, exec form
	user    string   // USER, once set
}

// host maps a path inside the stage to this machine.
func (s *stageFS) host(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(s.workdir, p)
	}
	return filepath.Join(s.root, filepath.FromSlash(path.Clean(p)))
}

func (s *stageFS) expand(v string) string {
	return os.Expand(v, func(k string) string { return s.env[k] })
}

// absolutePath finds a path that starts at / in a shell command: on this
// machine it would name the machine's own file, not the stage's.
var absolutePath = regexp.MustCompile(`(?:^|[\s;&|=(<>"'])(/[^\s;&|)"']*)`)

func (b *builder) runStage(ctx context.Context, i int, st *stage) (*stageFS, error) {
	fs := &stageFS{root: filepath.Join(b.root, fmt.Sprintf("stage-%d", i)), workdir: "/", env: map[string]string{}}
	if err := os.MkdirAll(fs.root, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "== %s\n", st.from)
	for _, in := range st.steps {
		fmt.Fprintf(b.log, "== %s\n", in)
		if err := b.step(ctx, fs, in); err != nil {
			return nil, fmt.Errorf("%s: %w", in, err)
		}
	}
	return fs, nil
}

func (b *builder) step(ctx context.Context, fs *stageFS, in instruction) error {
	switch in.cmd {
	case "WORKDIR":
		fs.workdir = path.Join(fs.workdir, fs.expand(in.args))
		return os.MkdirAll(fs.host(fs.workdir), 0o755)
	case "ARG":
		name, def, _ := strings.Cut(in.args, "=")
		if v, ok := b.buildArgs[name]; ok {
			def = v
		}
		fs.env[name] = strings.Trim(def, `"`)
		return nil
	case "ENV":
		return setEnv(fs, in.args)
	case "COPY", "ADD":
		return b.copy(fs, in)
	case "RUN":
		if fs.user != "" {
			return fmt.Errorf("RUN after USER %s cannot be emulated: it would run as this machine's user", fs.user)
		}
		return b.run(ctx, fs, in.args)
	case "ENTRYPOINT":
		words, ok, err := execForm(in.args)
		if err != nil || !ok {
			return fmt.Errorf("want the exec form ([\"/path\", \"arg\"]): %v", err)
		}
		fs.entry = words
		return nil
	case "HEALTHCHECK":
		if in.args == "NONE" {
			return nil
		}
		_, cmd := flags(in.args)
		words, ok, err := execForm(strings.TrimSpace(strings.TrimPrefix(cmd, "CMD")))
		if err != nil || !ok {
			return fmt.Errorf("want HEALTHCHECK [flags] CMD [\"/path\", \"arg\"]: %v", err)
		}
		fs.health = words
		return nil
	case "USER":
		fs.user = in.args
		return nil
	case "CMD", "EXPOSE", "VOLUME", "LABEL", "STOPSIGNAL":
		return nil // image metadata: nothing to build
	}
	return fmt.Errorf("instruction %s is not supported here", in.cmd)
}

func setEnv(fs *stageFS, args string) error {
	if k, v, ok := strings.Cut(args, " "); ok && !strings.Contains(k, "=") {
		fs.env[k] = fs.expand(strings.TrimSpace(v)) // legacy ENV key value
		return nil
	}
	for _, kv := range strings.Fields(args) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("want KEY=value, got %q", kv)
		}
		fs.env[k] = fs.expand(strings.Trim(v, `"`))
	}
	return nil
}

func (b *builder) copy(fs *stageFS, in instruction) error {
	opts, args := flags(in.args)
	words, exec, err := execForm(args)
	if err != nil {
		return err
	}
	if !exec {
		words = strings.Fields(args)
	}
	if len(words) < 2 {
		return fmt.Errorf("want sources and a destination")
	}
	srcRoot, what := b.context, "the build context (is it in the repository, or excluded by .dockerignore?)"
	if from, ok := opts["from"]; ok {
		st, ok := b.stages[from]
		if !ok {
			return fmt.Errorf("no stage %q before this one", from)
		}
		srcRoot, what = st.root, "stage "+from
	}
	srcs, dest := words[:len(words)-1], fs.expand(words[len(words)-1])
	intoDir := strings.HasSuffix(dest, "/") || len(srcs) > 1
	for _, src := range srcs {
		pattern := filepath.Join(srcRoot, filepath.FromSlash(path.Clean("/"+fs.expand(src))))
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		if len(matches) == 0 {
			return fmt.Errorf("%s: not in %s", src, what)
		}
		for _, m := range matches {
			info, err := os.Lstat(m)
			if err != nil {
				return err
			}
			target := fs.host(dest)
			if !info.IsDir() && (intoDir || isDir(target)) {
				target = filepath.Join(target, filepath.Base(m))
			}
			// A directory's contents are copied, not the directory itself, as Docker does.
			if err := copyTree(m, target); err != nil {
				return err
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

func (b *builder) run(ctx context.Context, fs *stageFS, args string) error {
	words, exec, err := execForm(args)
	if err != nil {
		return err
	}
	script := args
	if exec {
		script = strings.Join(words, " ")
	}
	for _, m := range absolutePath.FindAllStringSubmatch(script, -1) {
		if m[1] != "/dev/null" {
			return fmt.Errorf("%s is outside WORKDIR: here it would be this machine's file, not the image's; use a path relative to WORKDIR", m[1])
		}
	}
	cmd := shellCommand(ctx, words, exec, args)
	cmd.Dir = fs.host(fs.workdir)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.Env = os.Environ()
	for k, v := range fs.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd.Run()
}

func shellCommand(ctx context.Context, words []string, execForm bool, args string) *exec.Cmd {
	if execForm {
		return exec.CommandContext(ctx, words[0], words[1:]...)
	}
	return exec.CommandContext(ctx, "/bin/sh", "-c", args)
}

// checkFinal checks what a runtime stage without RUN lines can be checked
// for without its base image: the programs its ENTRYPOINT and HEALTHCHECK
// start are there and executable.
func checkFinal(fs *stageFS) error {
	for _, prog := range [][]string{fs.entry, fs.health} {
		if len(prog) == 0 {
			continue
		}
		info, err := os.Stat(fs.host(prog[0]))
		if err != nil {
			return fmt.Errorf("the image would not have %s: %w", prog[0], err)
		}
		if info.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", prog[0])
		}
	}
	return nil
}
