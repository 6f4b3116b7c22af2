package cli

import (
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/httpapi"
)

// The steps of a clean stop, one after another, fit the default
// SHUTDOWN_TIMEOUT, which fits the 30 s Heroku allows after SIGTERM.
func TestShutdownBudgetFitsHeroku(t *testing.T) {
	cfg, err := config.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	steps := httpapi.DefaultRequestTimeout + outgoingShutdownGrace + closeAllowance + finalBackupTimeout
	if steps > cfg.ShutdownTimeout {
		t.Errorf("the shutdown steps take up to %s, more than SHUTDOWN_TIMEOUT's default %s", steps, cfg.ShutdownTimeout)
	}
	if heroku := 30 * time.Second; cfg.ShutdownTimeout >= heroku {
		t.Errorf("SHUTDOWN_TIMEOUT's default %s does not leave Heroku's %s", cfg.ShutdownTimeout, heroku)
	}
}
