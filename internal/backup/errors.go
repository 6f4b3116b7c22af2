package backup

import "errors"

var (
	// ErrNoKey is returned when no passphrase is configured: backups are
	// never written in plaintext, and none can be read.
	ErrNoKey = errors.New("no backup encryption key (SESSION_ENCRYPTION_KEY) is set; backups are disabled")
	// ErrKeyTooShort is returned for a passphrase shorter than MinPassphraseLen characters.
	ErrKeyTooShort = errors.New("backup encryption key (SESSION_ENCRYPTION_KEY) is too short")
	// ErrNotPaired is returned by Snapshot when the store holds no paired device for the session.
	ErrNotPaired = errors.New("session is not paired: nothing to back up")
	// ErrCorrupt is returned for data that is not an intact backup: truncated, damaged or not a backup at all.
	ErrCorrupt = errors.New("backup is corrupt")
	// ErrWrongKey is returned when an intact backup does not open with the given passphrase.
	ErrWrongKey = errors.New("backup was encrypted with a different key")
	// ErrNoBackup is returned by restores that found no valid backup for the session.
	ErrNoBackup = errors.New("no valid backup")
)
