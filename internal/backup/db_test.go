package backup

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestDBSaveListPrune(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, kind)
			d, other := NewDB(st, testSession), NewDB(st, "other")
			var written []time.Time
			for i := range 4 {
				at := t0.Add(time.Duration(i) * time.Hour)
				if _, err := d.Save(ctx, []byte{byte(i), 0xff}, at); err != nil {
					t.Fatal(err)
				}
				written = append(written, at)
			}
			if _, err := other.Save(ctx, []byte{7}, t0.Add(99*time.Hour)); err != nil {
				t.Fatal(err)
			}
			list, err := d.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slices.Reverse(written)
			if got := entryTimes(list); !slices.EqualFunc(got, written, time.Time.Equal) {
				t.Fatalf("List = %v, want newest first %v", got, written)
			}
			if list[0].Size != 2 {
				t.Errorf("Size = %d, want 2", list[0].Size)
			}
			if data, err := d.Read(ctx, list[0]); err != nil || !slices.Equal(data, []byte{3, 0xff}) {
				t.Fatalf("Read newest = %v, %v", data, err)
			}
			if n, err := d.Prune(ctx, 2); err != nil || n != 2 {
				t.Fatalf("Prune(2) = %d, %v; want 2", n, err)
			}
			list, _ = d.List(ctx)
			if got := entryTimes(list); !slices.EqualFunc(got, written[:2], time.Time.Equal) {
				t.Fatalf("after Prune(2): %v, want %v", got, written[:2])
			}
			if l, _ := other.List(ctx); len(l) != 1 {
				t.Errorf("Prune touched another session's backups: %v", l)
			}
			if _, err := other.Read(ctx, list[0]); err == nil {
				t.Error("a session read another session's backup")
			}
		})
	}
}
