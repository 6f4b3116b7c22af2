package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/blacksky-bot/blacksky/internal/cmdline"
	"log/slog"
	"os"

	"github.com/blacksky-bot/blacksky/internal/backup"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/store"
)

func backupCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	out := fs.String("out", "", "write the encrypted backup to this file instead of BACKUP_DIR and the database")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	return withBackups(ctx, env, "backup", func(cfg *config.Config, st *store.Store, m *backup.Manager) int {
		if *out == "" {
			res, err := m.Backup(ctx)
			if err != nil {
				return backupFailed(env, "backup", err)
			}
			for _, e := range res.Written {
				fmt.Fprintf(env.stdout, "backed up %s to %s\n", res.JID, e)
			}
			return exitOK
		}
		sess, err := backup.Snapshot(ctx, st, cfg.SessionID)
		if err != nil {
			return backupFailed(env, "backup", err)
		}
		data, err := backup.Encode(sess, cfg.EncryptionKey)
		if err == nil {
			err = backup.WriteFile(*out, data)
		}
		if err != nil {
			return backupFailed(env, "backup", err)
		}
		fmt.Fprintf(env.stdout, "backed up %s to %s\n", sess.JID, *out)
		return exitOK
	})
}

func restoreCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(nilWriter{})
	if code := (cmdline.Command{Name: "blacksky " + fs.Name(), Stdout: env.stdout, Stderr: env.stderr, Args: "[FILE]"}).Parse(fs, args); code >= 0 {
		return code
	}
	file := fs.Arg(0)
	return withBackups(ctx, env, "restore", func(cfg *config.Config, st *store.Store, m *backup.Manager) int {
		// Never change the session under a running bot.
		l, err := lease.TryAcquire(ctx, st, cfg.SessionID, lease.HolderID()+" (restore)", lease.Options{})
		if errors.Is(err, lease.ErrHeld) {
			h, _, _ := lease.CurrentHolder(ctx, st, cfg.SessionID)
			fmt.Fprintf(env.stderr, "blacksky restore: session %q is driven by a running process (%s); stop it first\n", cfg.SessionID, h.ID)
			return exitFailure
		}
		if err != nil {
			return backupFailed(env, "restore", err)
		}
		defer l.Release()
		if file == "" {
			res, err := m.RestoreNewest(ctx)
			if err != nil {
				return backupFailed(env, "restore", err)
			}
			fmt.Fprintf(env.stdout, "restored %s from %s (taken %s)\n", res.JID, res.From, res.CreatedAt.Format("2006-01-02 15:04:05 MST"))
			return exitOK
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return backupFailed(env, "restore", err)
		}
		sess, err := backup.Decode(data, cfg.EncryptionKey)
		if err == nil {
			err = backup.Restore(ctx, st, sess)
		}
		if err != nil {
			return backupFailed(env, "restore", err)
		}
		fmt.Fprintf(env.stdout, "restored %s from %s (taken %s)\n", sess.JID, file, sess.CreatedAt.Format("2006-01-02 15:04:05 MST"))
		return exitOK
	})
}

// withBackups opens the configured database and its backups for a command.
func withBackups(ctx context.Context, env *environment, cmd string, f func(*config.Config, *store.Store, *backup.Manager) int) int {
	cfg, ok := loadConfig(env, cmd)
	if !ok {
		return exitUsage
	}
	if !cfg.BackupsEnabled() {
		fmt.Fprintf(env.stderr, "blacksky %s: set SESSION_ENCRYPTION_KEY (at least 16 characters; e.g. openssl rand -base64 32): backups are never written or read in plaintext\n", cmd)
		return exitUsage
	}
	log := newLogger(env, cfg)
	st, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky %s: %v%s\n", cmd, err, helpFor(err))
		return openFailure(err)
	}
	defer st.Close()
	m, err := newBackups(cfg, st, log)
	if err != nil {
		fmt.Fprintf(env.stderr, "blacksky %s: %v\n", cmd, err)
		return exitFailure
	}
	return f(cfg, st, m)
}

func backupFailed(env *environment, cmd string, err error) int {
	fmt.Fprintf(env.stderr, "blacksky %s: %v\n", cmd, err)
	if errors.Is(err, backup.ErrNotPaired) || errors.Is(err, backup.ErrWrongKey) || errors.Is(err, backup.ErrCorrupt) || errors.Is(err, os.ErrNotExist) {
		return exitUsage
	}
	return exitFailure
}
