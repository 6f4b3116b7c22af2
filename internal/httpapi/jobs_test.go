package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// A dead webhook event is seen, retried and purged through the same API as
// every other kind of work, not only through the owner's ".queue retry".
func TestJobsAPI(t *testing.T) {
	for _, kind := range testkit.Engines {
		t.Run(string(kind), func(t *testing.T) {
			st := testkit.Store(t, kind)
			wh, err := webhook.New(st.DB(), st.Engine(), webhook.Options{URL: "http://127.0.0.1:1/hook", Session: "default"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for range 2 {
				if _, err := wh.Enqueue(ctx, webhook.KindMessageReceived, map[string]string{"text": "hi"}); err != nil {
					t.Fatal(err)
				}
			}
			// Both events ran out of attempts.
			claimed, err := wh.Jobs().Claim(ctx, 2, "test", time.Minute)
			if err != nil || len(claimed) != 2 {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			for _, j := range claimed {
				if err := wh.Jobs().Bury(ctx, j, "HTTP 502: bad gateway", nil); err != nil {
					t.Fatal(err)
				}
			}
			q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{Session: "default"})
			f := &fixture{conn: &fakeConn{}, db: &fakeDB{}, metrics: metrics.New(), started: time.Now()}
			f.h = httpapi.New(httpapi.Options{Conn: f.conn, DB: f.db, Metrics: f.metrics, Outgoing: q, Started: f.started,
				Jobs: map[string]httpapi.Jobs{"webhook": wh.Jobs(), "outgoing": q.Jobs()}})

			var overview struct {
				Kinds map[string]struct {
					Depths map[string]int `json:"depths"`
				} `json:"kinds"`
			}
			expect(t, f.do("GET", "/api/v1/jobs", "", loopback), http.StatusOK, &overview)
			if overview.Kinds["webhook"].Depths["dead"] != 2 || overview.Kinds["outgoing"].Depths == nil {
				t.Fatalf("overview %+v; want the webhook's 2 dead and the outgoing queue", overview)
			}
			var list struct {
				Jobs []struct {
					ID        int64  `json:"id"`
					State     string `json:"state"`
					LastError string `json:"last_error"`
				} `json:"jobs"`
			}
			expect(t, f.do("GET", "/api/v1/jobs/webhook?state=dead", "", loopback), http.StatusOK, &list)
			if len(list.Jobs) != 2 || list.Jobs[0].LastError != "HTTP 502: bad gateway" {
				t.Fatalf("dead webhook events %+v", list.Jobs)
			}
			first := list.Jobs[1].ID
			path := "/api/v1/jobs/webhook/" + itoa(first)
			expect(t, f.do("POST", path+"/retry", "", loopback), http.StatusOK, nil)
			if d, _ := wh.Depths(ctx); d[webhook.Pending] != 1 || d[webhook.Dead] != 1 {
				t.Fatalf("after retrying one: %v", d)
			}
			expect(t, f.do("POST", path+"/retry", "", loopback), http.StatusNotFound, nil) // pending now
			expect(t, f.do("DELETE", path, "", loopback), http.StatusNotFound, nil)        // an open job is never purged
			expect(t, f.do("DELETE", "/api/v1/jobs/webhook", "", loopback), http.StatusBadRequest, nil)
			var purged map[string]int
			expect(t, f.do("DELETE", "/api/v1/jobs/webhook?state=dead", "", loopback), http.StatusOK, &purged)
			if purged["purged"] != 1 {
				t.Fatalf("purged %v, want the other dead event", purged)
			}
			expect(t, f.do("GET", "/api/v1/jobs/webhook?state=sent", "", loopback), http.StatusBadRequest, nil)
			w := f.do("GET", "/api/v1/jobs/nope", "", loopback)
			if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "known: outgoing, webhook") {
				t.Fatalf("unknown kind: %d %s", w.Code, w.Body)
			}
			// Like the rest of the API: this machine only without a token.
			if w := f.do("GET", "/api/v1/jobs", "", fromAddr("203.0.113.9:1234")); w.Code != http.StatusForbidden && w.Code != http.StatusUnauthorized {
				t.Fatalf("from another machine: %d", w.Code)
			}
		})
	}
}

func expect(t *testing.T, w interface {
	Result() *http.Response
}, want int, v any) {
	t.Helper()
	resp := w.Result()
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("status %d, want %d", resp.StatusCode, want)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
