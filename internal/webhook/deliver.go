package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// Signature returns the X-Blacksky-Signature value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the valid signature of body under
// secret, in constant time; receivers in Go can use it.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Signature(secret, body)))
}

// Run delivers due events one at a time, oldest first, until ctx ends, then
// returns nil. Database errors are logged and retried, never returned. Each
// event is claimed under a lease (internal/jobs), so dispatchers of several
// processes never post one event at once, and an event whose process died
// mid-post is posted again when its lease ends, under the same event ID.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		wait, err := c.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("webhook: deliver", "err", err)
			wait = c.opts.PollInterval
		}
		timer := time.NewTimer(min(wait, c.opts.PollInterval))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-c.wake:
		case <-timer.C:
		case <-prune.C:
			if n, err := c.Prune(ctx); err != nil {
				c.log.Warn("webhook: prune", "err", err)
			} else if n > 0 {
				c.log.Info("webhook: pruned delivered events", "count", n)
			}
		}
		timer.Stop()
	}
}

// deliverDue attempts every due event and returns how long until the next
// one is due.
func (c *Client) deliverDue(ctx context.Context) (time.Duration, error) {
	for ctx.Err() == nil {
		var d due
		claimed, err := c.jobs.ClaimLoading(ctx, 1, c.owner, c.lease(), func(scan func(dest ...any) (jobs.Job, error)) error {
			var err error
			d.job, err = scan(&d.id, &d.kind, &d.body)
			return err
		})
		if err != nil {
			return 0, err
		}
		if len(claimed) == 0 {
			return c.untilNext(ctx)
		}
		if err := c.attempt(ctx, d); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// lease is how long a claimed event is this dispatcher's: its post is
// bounded by Timeout, and recording the outcome follows at once.
func (c *Client) lease() time.Duration { return 2*c.opts.Timeout + 30*time.Second }

type due struct {
	job      jobs.Job
	id, kind string
	body     string
}

func (c *Client) untilNext(ctx context.Context) (time.Duration, error) {
	next, ok, err := c.jobs.NextDue(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		return c.opts.PollInterval, nil
	}
	return max(next.Sub(c.opts.Now()), time.Millisecond), nil
}

// attempt posts one event and records the outcome.
func (c *Client) attempt(ctx context.Context, d due) error {
	attempt := d.job.Attempts
	postErr := c.post(ctx, d, attempt)
	if ctx.Err() != nil {
		// Shutting down: the attempt does not count, it is made again later.
		if err := c.jobs.Release(context.WithoutCancel(ctx), d.job); err != nil {
			c.log.Warn("webhook: give back an event at shutdown; it is due again when its lease ends", "event_id", d.id, "err", err)
		}
		return nil
	}
	if postErr == nil {
		if err := c.jobs.Complete(ctx, d.job, nil); err != nil {
			return fmt.Errorf("record webhook delivery: %w", err)
		}
		c.log.Debug("webhook: delivered", "event_id", d.id, "kind", d.kind, "attempt", attempt)
		return nil
	}
	msg := truncate(postErr.Error(), 500)
	dead, err := c.jobs.Fail(ctx, d.job, msg, jobs.Policy{MaxAttempts: c.opts.MaxAttempts, Backoff: c.opts.Backoff})
	if err != nil {
		return fmt.Errorf("record failed webhook attempt: %w", err)
	}
	if dead {
		c.log.Error("webhook: event is dead after its last attempt", "event_id", d.id, "kind", d.kind, "attempts", attempt, "err", msg,
			"help", troubleshoot.Webhook)
		return nil
	}
	c.log.Warn("webhook: attempt failed, will retry", "event_id", d.id, "kind", d.kind, "attempt", attempt, "err", msg)
	return nil
}

// MaskURL shows scheme and host of a URL and hides the rest, where a
// webhook's secret usually is (https://hooks.slack.com/services/T/B/secret,
// ...?token=...); user info is hidden too.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(URL hidden)"
	}
	masked := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		masked += "/(rest hidden)"
	}
	return masked
}

// post sends one attempt: nil means the endpoint answered 2xx in time.
func (c *Client) post(ctx context.Context, d due, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	body := []byte(d.body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("X-Blacksky-Event-Id", d.id)
	req.Header.Set("X-Blacksky-Event", d.kind)
	req.Header.Set("X-Blacksky-Timestamp", strconv.FormatInt(c.opts.Now().Unix(), 10))
	req.Header.Set("X-Blacksky-Attempt", strconv.Itoa(attempt))
	req.Header.Set("X-Blacksky-Signature", Signature(c.opts.Secret, body))
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// Hooks of Slack, Discord or n8n carry their secret in the path
			// or query: an error that is logged and stored names the host only.
			ue.URL = MaskURL(ue.URL)
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	// Read a bounded part so the connection can be reused; never more.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return fmt.Errorf("HTTP %d: redirect to %q not followed (only the webhook's own host)", resp.StatusCode, MaskURL(resp.Header.Get("Location")))
	}
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, printable(truncate(string(head), 200)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// printable keeps a response excerpt safe to store and log.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
}
