package logging

import (
	"log/slog"

	signallog "go.mau.fi/libsignal/logger"
)

// InstallSignalLogger routes libsignal's process-wide logger to l. Without
// it libsignal prints every message, debug included, to stdout, and creates
// its default logger lazily in a way that races on first concurrent use.
// Call it once at start, before any client exists.
func InstallSignalLogger(l *slog.Logger) {
	var lg signallog.Loggable = signalLogger{l: l.With("component", "libsignal")}
	signallog.Setup(&lg)
}

type signalLogger struct{ l *slog.Logger }

// Debug is dropped: libsignal's debug output describes keys and sessions.
func (s signalLogger) Debug(caller, msg string)   {}
func (s signalLogger) Info(caller, msg string)    { s.l.Debug(msg, "caller", caller) }
func (s signalLogger) Warning(caller, msg string) { s.l.Warn(msg, "caller", caller) }
func (s signalLogger) Error(caller, msg string)   { s.l.Error(msg, "caller", caller) }
func (s signalLogger) Configure(string)           {}
