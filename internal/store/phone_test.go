package store

import (
	"context"
	"testing"
	"time"
)

// The phone's last activity only moves forward, a move clears the warning,
// and of two attempts to warn about one last-seen time one succeeds.
func TestPhoneActivity(t *testing.T) {
	for kind, open := range backends(t) {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.Phone(ctx, "p"); ok || err != nil {
				t.Fatalf("phone of a new session: %v %v", ok, err)
			}
			t0 := time.UnixMilli(time.Now().Add(-11 * 24 * time.Hour).UnixMilli())
			if err := s.PhoneSeen(ctx, "p", t0); err != nil {
				t.Fatal(err)
			}
			if err := s.PhoneSeen(ctx, "p", t0.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Phone(ctx, "p")
			if err != nil || !ok || !got.LastSeen.Equal(t0) || got.Warned {
				t.Fatalf("phone %+v %v %v, want last seen %s, not warned", got, ok, err, t0)
			}
			for i, want := range []bool{true, false} {
				if made, err := s.MarkPhoneWarned(ctx, "p", t0); err != nil || made != want {
					t.Fatalf("warning %d: %v %v, want %v", i, made, err, want)
				}
			}
			if got, _, _ := s.Phone(ctx, "p"); !got.Warned {
				t.Fatal("warning not recorded")
			}
			t1 := t0.Add(time.Hour)
			if err := s.PhoneSeen(ctx, "p", t1); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.Phone(ctx, "p"); !got.LastSeen.Equal(t1) || got.Warned {
				t.Fatalf("after the phone was seen again: %+v", got)
			}
			if made, err := s.MarkPhoneWarned(ctx, "p", t0); err != nil || made {
				t.Fatalf("warned about a stale last-seen time: %v %v", made, err)
			}
		})
	}
}
