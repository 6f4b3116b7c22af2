package backoff

import (
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	p := Policy{Base: time.Second, Max: 60 * time.Second}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, time.Second},
		{1, 2 * time.Second},
		{5, 32 * time.Second},
		{6, 60 * time.Second},
		{1000, 60 * time.Second},
	}
	for _, tt := range tests {
		if got := p.Ceiling(tt.n); got != tt.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestDelayStaysBelowCeiling(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		p := Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Rand: func() float64 { return r }}
		for n := range 20 {
			d := p.Delay(n)
			if d < 0 || d >= p.Ceiling(n) {
				t.Fatalf("Delay(%d) with rand %v = %v, outside [0, %v)", n, r, d, p.Ceiling(n))
			}
		}
	}
	if d := (Policy{}).Delay(3); d != 0 {
		t.Errorf("zero policy Delay = %v, want 0", d)
	}
}
