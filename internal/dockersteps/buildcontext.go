package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// contextFiles lists what `docker build` of a fresh clone of the repository
// at dir sends as its build context: the files git would commit (tracked,
// plus untracked ones .gitignore does not exclude, so a new file counts
// before it is committed), less what .dockerignore excludes, matched with
// the library Docker itself uses.
func contextFiles(dir string) (files []string, ignored int, err error) {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("list the repository's files: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	pm, err := dockerignore(dir)
	if err != nil {
		return nil, 0, err
	}
	for _, name := range strings.Split(string(out), "\x00") {
		if name == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); os.IsNotExist(err) {
			continue // deleted in the work tree, not committed yet
		}
		skip, err := pm.MatchesOrParentMatches(name)
		if err != nil {
			return nil, 0, fmt.Errorf(".dockerignore: %w", err)
		}
		if skip {
			ignored++
			continue
		}
		files = append(files, name)
	}
	return files, ignored, nil
}

func dockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	var patterns []string
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	switch {
	case err == nil:
		defer f.Close()
		if patterns, err = ignorefile.ReadAll(f); err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
	case !os.IsNotExist(err):
		return nil, err
	}
	return patternmatcher.New(patterns)
}

// copyTree copies src (a file, a symbolic link or a directory) to dst,
// keeping permission bits.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return copyEntry(path, filepath.Join(dst, rel), info)
	})
}

func copyEntry(src, dst string, info os.FileInfo) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case info.IsDir():
		return os.MkdirAll(dst, info.Mode().Perm()|0o700)
	case info.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		os.Remove(dst)
		return os.Symlink(target, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
