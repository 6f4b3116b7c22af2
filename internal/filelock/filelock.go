// Package filelock provides exclusive advisory locks on files, which the
// kernel releases when the holding process exits, however it exits.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrLocked is returned by TryLock when another holder has the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held file lock.
type Lock struct {
	f    *os.File
	path string
}

// TryLock takes the lock on path without waiting, creating the file if needed.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// ErrReplaced is returned by Check when the lock's path no longer names the
// locked file.
var ErrReplaced = errors.New("lock file deleted or replaced")

// Check reports whether the lock still counts: a lock is on a file, not on
// its name, so once the file is deleted or replaced another process can
// create and lock a new file under the same path while this lock lives on.
func (l *Lock) Check() error {
	named, err := os.Stat(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is gone", ErrReplaced, l.path)
	}
	if err != nil {
		return fmt.Errorf("check lock file: %w", err)
	}
	locked, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("check lock file: %w", err)
	}
	if !os.SameFile(named, locked) {
		return fmt.Errorf("%w: %s is another file now", ErrReplaced, l.path)
	}
	return nil
}

// Acquire waits until it holds the lock on path or ctx ends.
func Acquire(ctx context.Context, path string) (*Lock, error) {
	const poll = 25 * time.Millisecond
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		l, err := TryLock(path)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// Release gives the lock back.
func (l *Lock) Release() error {
	return l.f.Close()
}
