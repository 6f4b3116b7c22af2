// Package backup keeps a WhatsApp session alive across lost disks: it takes
// encrypted snapshots of everything whatsmeow stores for one device (every
// whatsmeow_* row keyed by the device JID, the shared LID map and our
// blacksky_accounts row), writes them atomically to a directory and to the
// blacksky_backups table, and restores the newest valid one into a store
// that lost the session: a fresh database after a wiped disk, or after a
// corrupt SQLite file was moved aside (MoveAside). A snapshot restores into
// either engine, whichever took it, which is also how to migrate.
//
// Snapshots are sealed with XChaCha20-Poly1305 under a key stretched from a
// passphrase with Argon2id; nothing is ever written in plaintext.
//
// Typical use, with st opened and migrated:
//
//	m, err := backup.New(st, backup.Options{SessionID: id, Passphrase: key, Dir: dir, Keep: keep})
//	res, err := m.RestoreIfMissing(ctx) // at start, before loading the device; ErrNoBackup: pair
//	go m.Run(ctx, interval)             // the schedule
//	res, err = m.Backup(shutdownCtx)    // on clean shutdown, after the client disconnected
//
// Restoring is a rollback of the Signal protocol state. Sessions, sender
// keys and one-time pre-keys that changed after the snapshot was taken are
// lost, so messages from some contacts or groups may fail to decrypt until
// their devices re-send keys (WhatsApp does this after a retry receipt, or
// when they next message us); app state may need a full resync. The newer
// the backup, the fewer chats are affected. Restore must run before the
// device is loaded and connected, and never while another process is
// connected with the same device.
package backup
