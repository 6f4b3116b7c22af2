package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLockIsExclusiveUntilReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	first, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock = %v, want ErrLocked", err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	first.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Acquire after release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not get the released lock")
	}
}

func TestAcquireGivesUpWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	held, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Acquire(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context = %v", err)
	}
}

// A lock is on a file, not on its name: Check sees the name pointing
// elsewhere, as another process that locked a new file there would.
func TestCheckSeesTheFileGoneOrReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.Check(); err != nil {
		t.Fatalf("fresh lock: %v", err)
	}
	os.Remove(path)
	if err := l.Check(); !errors.Is(err, ErrReplaced) {
		t.Errorf("after delete: %v; want ErrReplaced", err)
	}
	other, err := TryLock(path)
	if err != nil {
		t.Fatalf("a second process can lock the new file at once: %v", err)
	}
	defer other.Release()
	if err := l.Check(); !errors.Is(err, ErrReplaced) {
		t.Errorf("after replace: %v; want ErrReplaced", err)
	}
	if err := other.Check(); err != nil {
		t.Errorf("the new lock: %v", err)
	}
}
