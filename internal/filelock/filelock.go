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
	f *os.File
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
	return &Lock{f: f}, nil
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
