package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotWritable is returned when the SQLite database's directory, or one
// of its files, cannot be written by the user this process runs as. It is a
// configuration problem (who owns the data directory), not a database one.
var ErrNotWritable = errors.New("not writable")

// checkWritable makes sure the process can create and write the SQLite
// files at path before SQLite tries: SQLite reports a directory it may not
// write as "unable to open database file (14)", which names neither the
// directory nor the user, and opens a file it may not write read-only, to
// fail later (issue 15: a Docker bind mount of ./data, owned by the host's
// user, under the image's uid 65532).
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if denied(err) {
			return notWritable("data directory", dir, err)
		}
		return fmt.Errorf("create data directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".blacksky-write-probe-*")
	if err != nil {
		if denied(err) {
			return notWritable("data directory", dir, err)
		}
		return fmt.Errorf("write to data directory %s: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		switch {
		case err == nil:
			f.Close()
		case denied(err):
			return notWritable("database file", name, err)
		}
	}
	return nil
}

func denied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// notWritable says, in one line, what cannot be written, by whom, who owns
// it, and the two ways out.
func notWritable(what, name string, cause error) error {
	uid := os.Getuid()
	owner := -1
	if info, err := os.Stat(name); err == nil {
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			owner = int(st.Uid)
		}
	}
	var fix string
	switch {
	case errors.Is(cause, syscall.EROFS):
		fix = "mount it read-write, or set DATA_DIR to a writable directory"
	case owner == uid:
		fix = fmt.Sprintf("chmod u+w %s, or set DATA_DIR to a writable directory", name)
	case owner > 0:
		fix = fmt.Sprintf("chown -R %d %s (for a Docker bind mount: on the host directory you mounted), or run blacksky as uid %d, its owner (docker run --user %d)", uid, name, owner, owner)
	case owner == 0:
		fix = fmt.Sprintf("chown -R %d %s (for a Docker bind mount: on the host directory you mounted)", uid, name)
	default:
		fix = fmt.Sprintf("give uid %d write access to it, or set DATA_DIR to a writable directory", uid)
	}
	return notWritableError(fmt.Sprintf("%s %s cannot be written by uid %d, the user blacksky runs as (%v); fix: %s", what, name, uid, cause, fix))
}

// notWritableError is ErrNotWritable with the whole story in its text.
type notWritableError string

func (e notWritableError) Error() string        { return string(e) }
func (e notWritableError) Is(target error) bool { return target == ErrNotWritable }

// CheckWritableReadOnly is checkWritable without writing anything, for
// blacksky doctor: it asks the kernel (access(2), with this process's user
// and groups) whether the SQLite files at path, or the directory they go
// in, or, while that does not exist yet, the nearest directory above it
// that does, may be written. The permission bits, ACLs and a read-only
// mount are in that answer; a full disk or quota, a network filesystem
// that refuses on the server's side (NFS root_squash, uid mapping) and a
// security profile that refuses the open itself (AppArmor) are not: only
// writing finds those, which blacksky run does at start.
func CheckWritableReadOnly(path string) error {
	dir := filepath.Dir(path)
	for {
		info, err := os.Stat(dir)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("data directory %s is not a directory", dir)
			}
			break
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
		dir = parent
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return notWritable("data directory", dir, err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if err := unix.Access(name, unix.W_OK); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return notWritable("database file", name, err)
		}
	}
	return nil
}
