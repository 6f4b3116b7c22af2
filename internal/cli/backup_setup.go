package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backup"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/store"
)

func newBackups(cfg *config.Config, st *store.Store, log *slog.Logger) (*backup.Manager, error) {
	m, err := backup.New(st, backup.Options{
		SessionID: cfg.SessionID, Passphrase: cfg.EncryptionKey, Dir: cfg.BackupDir, Keep: cfg.BackupKeep,
		Logger: log.With("component", "backup"),
	})
	if err != nil {
		return nil, fmt.Errorf("backups: %w", err)
	}
	return m, nil
}

// restoreMissing restores the newest valid backup when the store has no
// session; it runs under the account lease, before connecting. Only a key
// that opens no backup stops the bot: pairing anew would soon prune the
// backups that the right key could still open.
func restoreMissing(m *backup.Manager, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		res, err := m.RestoreIfMissing(ctx)
		switch {
		case err == nil && res.Restored:
			log.Warn("restored the session from a backup; no pairing needed", "backup", res.From.String(),
				"taken", res.CreatedAt, "account", res.JID.String(), "why", res.Reason, "skipped_unusable", len(res.Skipped))
			for _, s := range res.Skipped {
				log.Warn("skipped an unusable backup", "backup", s)
			}
		case err == nil:
		case errors.Is(err, backup.ErrNoKey):
			log.Warn("no session in the store, and no SESSION_ENCRYPTION_KEY to restore a backup with: pairing needed")
		case errors.Is(err, backup.ErrNoBackup):
			log.Warn("no session in the store and no usable backup: pairing needed", "why", err.Error())
		case errors.Is(err, backup.ErrWrongKey):
			return fmt.Errorf("SESSION_ENCRYPTION_KEY does not open the newest backup (%w); set the key the backups were made with, or move BACKUP_DIR away to pair anew", err)
		default:
			return fmt.Errorf("restore session: %w", err)
		}
		return nil
	}
}

// recoverCorruptSQLite replaces a corrupt SQLite file with a fresh one
// restored from the newest backup in BACKUP_DIR that the key opens (by the
// restore's own rules, backup.Manager.Newest). The damaged file is kept
// beside it. Without such a backup it changes nothing and returns the
// original error.
func recoverCorruptSQLite(ctx context.Context, cfg *config.Config, log *slog.Logger, corrupt error) (*store.Store, error) {
	if cfg.UsesPostgres() || !cfg.BackupsEnabled() {
		return nil, corrupt
	}
	files, err := backup.New(nil, backup.Options{SessionID: cfg.SessionID, Passphrase: cfg.EncryptionKey, Dir: cfg.BackupDir,
		Logger: log.With("component", "backup")})
	if err != nil {
		return nil, fmt.Errorf("%w; %v", corrupt, err)
	}
	sess, found, err := files.Newest(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing to restore from %s: %v", corrupt, cfg.BackupDir, err)
	}
	moved, err := backup.MoveAside(cfg.SQLitePath(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w; move the corrupt file aside: %v", corrupt, err)
	}
	log.Error("the SQLite database was corrupt; kept it aside and restoring the newest backup", "kept_as", moved, "backup", found.From.String())
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return nil, err
	}
	if err := backup.Restore(ctx, st, sess); err != nil {
		st.Close()
		return nil, fmt.Errorf("restore session into a fresh database: %w", err)
	}
	log.Warn("restored the session from a backup; no pairing needed", "taken", sess.CreatedAt, "account", sess.JID.String())
	return st, nil
}

// backupStatus is what /status says about backups.
func backupStatus(cfg *config.Config, m *backup.Manager) func(context.Context) any {
	return func(ctx context.Context) any {
		if !cfg.BackupsEnabled() {
			return map[string]any{"enabled": false, "reason": "SESSION_ENCRYPTION_KEY is not set: no backups are written (never in plaintext)"}
		}
		out := map[string]any{"enabled": true, "interval": cfg.BackupInterval.String(), "keep": cfg.BackupKeep, "dir": cfg.BackupDir}
		list, err := m.List(ctx)
		switch {
		case err != nil:
			out["error"] = "cannot list backups now: " + err.Error()
		case len(list) > 0:
			out["newest"] = map[string]any{"where": list[0].String(), "created_at": list[0].CreatedAt}
		}
		return out
	}
}

// finalBackup takes a backup on clean shutdown, after the connection closed
// (so no key changes under it), within a few seconds of Heroku's 30.
func finalBackup(ctx context.Context, cfg *config.Config, m *backup.Manager, log *slog.Logger) {
	if !cfg.BackupsEnabled() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, finalBackupTimeout)
	defer cancel()
	res, err := m.Backup(ctx)
	switch {
	case errors.Is(err, backup.ErrNotPaired):
	case err != nil:
		log.Error("backup on shutdown failed", "err", err)
	default:
		log.Info("backed up the session on shutdown", "copies", len(res.Written), "pruned", res.Pruned)
	}
}
