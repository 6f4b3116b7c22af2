package backup

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// MoveAside renames a corrupt SQLite database, with its -wal and -shm
// files, to <path>.corrupt-<UTC time>, so a fresh database can be created
// in its place and restored from a backup while the damaged one is kept
// for inspection. It returns the new name of the main file.
func MoveAside(path string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	// The journal files first: a main file without them is what
	// SQLite would open, never the other way round.
	for _, suffix := range []string{"-wal", "-shm", ""} {
		err := os.Rename(path+suffix, aside+suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("move corrupt database aside: %w", err)
		}
	}
	return aside, nil
}
