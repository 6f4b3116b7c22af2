// Package logging builds the process's slog logger and adapts it to the
// logger interface whatsmeow expects.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// New returns a logger writing text or JSON records at level and above.
func New(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// quietModules are whatsmeow sub-loggers whose debug output dumps whole
// protocol nodes (key material included), so it never reaches our logs.
var quietModules = map[string]bool{"Socket": true, "Send": true, "Recv": true}

// WhatsApp adapts l to whatsmeow's logger, tagging records with the module.
func WhatsApp(l *slog.Logger) waLog.Logger {
	return waLogger{l: l.With("component", "whatsmeow")}
}

type waLogger struct {
	l     *slog.Logger
	quiet bool
}

func (w waLogger) log(level slog.Level, msg string, args []any) {
	if w.quiet && level < slog.LevelWarn {
		return
	}
	if !w.l.Enabled(context.Background(), level) {
		return
	}
	w.l.Log(context.Background(), level, fmt.Sprintf(msg, args...))
}

func (w waLogger) Warnf(msg string, args ...any)  { w.log(slog.LevelWarn, msg, args) }
func (w waLogger) Errorf(msg string, args ...any) { w.log(slog.LevelError, msg, args) }
func (w waLogger) Infof(msg string, args ...any)  { w.log(slog.LevelInfo, msg, args) }
func (w waLogger) Debugf(msg string, args ...any) { w.log(slog.LevelDebug, msg, args) }

func (w waLogger) Sub(module string) waLog.Logger {
	return waLogger{l: w.l.With("module", module), quiet: w.quiet || quietModules[module]}
}
