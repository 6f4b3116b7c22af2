package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestWhatsAppLoggerHidesProtocolDumps(t *testing.T) {
	var buf bytes.Buffer
	wa := WhatsApp(New(&buf, "text", slog.LevelDebug))
	wa.Sub("Client").Sub("Send").Debugf("<message><enc>%s</enc></message>", "SECRET-NODE")
	wa.Sub("Recv").Infof("node %s", "SECRET-NODE")
	wa.Sub("Socket").Warnf("frame socket closed: %s", "network down")
	wa.Sub("Client").Debugf("connected to %s", "web.whatsapp.com")
	out := buf.String()
	if strings.Contains(out, "SECRET-NODE") {
		t.Errorf("protocol dump reached the log:\n%s", out)
	}
	for _, want := range []string{"network down", "connected to web.whatsapp.com", "module=Client"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "json", slog.LevelWarn)
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json format wrote %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || strings.Contains(buf.String(), "hidden") {
		t.Errorf("got %q", buf.String())
	}
}

func TestSignalLoggerDropsDebug(t *testing.T) {
	var buf bytes.Buffer
	l := signalLogger{l: New(&buf, "text", slog.LevelDebug)}
	l.Debug("SessionBuilder", "identity key SECRET")
	l.Warning("SessionCipher", "untrusted identity")
	if strings.Contains(buf.String(), "SECRET") || !strings.Contains(buf.String(), "untrusted identity") {
		t.Errorf("got %q", buf.String())
	}
}
