package memlimit

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestMaxMemoryLeavesHeadroom(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	got := Apply(512, slog.New(slog.DiscardHandler))
	mb := 512
	want := int64(float64(int64(mb)<<20) * 0.9)
	if got != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("Apply(512) = %d, runtime limit %d; want %d", got, debug.SetMemoryLimit(-1), want)
	}
}
