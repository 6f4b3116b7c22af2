package backup

import (
	"fmt"
	"time"
)

// Source names where a backup is kept.
type Source string

// The places backups are kept.
const (
	SourceDB  Source = "database"
	SourceDir Source = "directory"
)

// Entry is one stored backup, without its contents.
type Entry struct {
	Source    Source
	Path      string // the file, for SourceDir
	ID        int64  // the blacksky_backups row, for SourceDB
	CreatedAt time.Time
	Size      int64
}

// String names the backup for logs and messages.
func (e Entry) String() string {
	if e.Source == SourceDB {
		return fmt.Sprintf("database backup #%d of %s", e.ID, e.CreatedAt.Format(time.RFC3339))
	}
	return fmt.Sprintf("backup file %s", e.Path)
}
