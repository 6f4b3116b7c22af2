package testkit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Logs records every line a logger writes, at every level, so a test can
// count how often something was said (once per outage, not per attempt).
type Logs struct {
	mu    sync.Mutex
	lines []LogLine
}

// LogLine is one recorded line: its level, message and attributes as text.
type LogLine struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// NewLogs returns an empty recorder.
func NewLogs() *Logs { return &Logs{} }

// Logger is a logger that writes into l.
func (l *Logs) Logger() *slog.Logger { return slog.New(&logsHandler{logs: l}) }

// Lines returns the lines at level whose message contains msg.
func (l *Logs) Lines(level slog.Level, msg string) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogLine
	for _, line := range l.lines {
		if line.Level == level && strings.Contains(line.Msg, msg) {
			out = append(out, line)
		}
	}
	return out
}

// Count is how many lines at level have a message containing msg.
func (l *Logs) Count(level slog.Level, msg string) int { return len(l.Lines(level, msg)) }

// String lists every line, for a failing test's message.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		b.WriteString(line.Level.String() + " " + line.Msg)
		for k, v := range line.Attrs {
			b.WriteString(" " + k + "=" + v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type logsHandler struct {
	logs  *Logs
	attrs []slog.Attr
}

func (h *logsHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logsHandler) Handle(_ context.Context, r slog.Record) error {
	line := LogLine{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		line.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		line.Attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.lines = append(h.logs.lines, line)
	h.logs.mu.Unlock()
	return nil
}

func (h *logsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logsHandler{logs: h.logs, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

// WithGroup is not used by this project's loggers; attributes stay flat.
func (h *logsHandler) WithGroup(string) slog.Handler { return h }
