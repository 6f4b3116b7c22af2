package bot

import (
	"context"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/jobs"
)

// lease is how long a claimed message is this worker's: longer than its
// command may run and its storage steps may take, so it is never handled
// twice at once; a process that died with it is waited out only by a new
// process that is not the account's holder (Run reclaims at start).
func (b *Bot) lease() time.Duration {
	return b.opts.CommandTimeout + 3*b.opts.StoreTimeout + time.Minute
}

// Run handles stored messages until ctx ends: up to Workers chats at once,
// each chat's messages one at a time in the order they arrived, and sends
// the owners the connected notice on the first connection. It returns nil
// after ctx ends and waits for handlings under way; a message not handled
// by then stays pending, uncounted. Database errors are logged and retried,
// never returned. Run it only in the process that holds the account
// (account.Options.OnLeader): it first takes back the messages a dead
// holder was handling. One Run per Bot at a time.
func (b *Bot) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer b.running.Store(false)
	if n, err := b.jobs.ReclaimAll(ctx); err != nil {
		b.log.Error("bot: take back messages a previous process was handling; they wait for their lease", "err", err)
	} else if n > 0 {
		b.log.Info("bot: took back messages a previous process was handling", "count", n)
	}
	slots := make(chan struct{}, b.opts.Workers)
	done := make(chan struct{}, b.opts.Workers)
	var notify sync.WaitGroup
	defer func() {
		for range len(slots) {
			<-done
		}
		notify.Wait()
	}()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		b.claimAndHandle(ctx, slots, done)
		timer := time.NewTimer(b.untilNext(ctx))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-b.wake:
		case <-done:
			<-slots
		case <-timer.C:
		case <-b.connected:
			if !b.notified.Load() {
				notify.Go(func() { b.notifyOnce(ctx) })
			}
		case <-prune.C:
			if n, err := b.Prune(ctx); err != nil {
				b.log.Warn("bot: prune handled messages", "err", err)
			} else if n > 0 {
				b.log.Info("bot: pruned handled messages", "count", n)
			}
		}
		timer.Stop()
	}
}

// claimAndHandle claims as many due messages as there are free workers and
// handles each in its own goroutine, which reports on done when it ends.
func (b *Bot) claimAndHandle(ctx context.Context, slots, done chan struct{}) {
	free := cap(slots) - len(slots)
	if free == 0 || ctx.Err() != nil {
		return
	}
	claimed, err := b.jobs.Claim(ctx, free, b.owner, b.lease())
	if err != nil {
		if ctx.Err() == nil {
			b.log.Error("bot: look for pending messages", "err", err)
		}
		return
	}
	for _, j := range claimed {
		slots <- struct{}{}
		go func() {
			b.handle(ctx, j)
			done <- struct{}{}
		}()
	}
}

// untilNext is how long the worker may sleep: until the next retry comes
// due, at most PollInterval (new messages and finished handlings wake it).
func (b *Bot) untilNext(ctx context.Context) time.Duration {
	next, ok, err := b.jobs.NextDue(ctx)
	if err != nil || !ok {
		return b.opts.PollInterval
	}
	return min(max(next.Sub(b.opts.Now()), time.Millisecond), b.opts.PollInterval)
}

// handle handles the claimed message j: done, retried later, or given back
// untouched when ctx ends first (shutting down is not the message's fault).
func (b *Bot) handle(ctx context.Context, j jobs.Job) {
	m, err := b.load(ctx, j.ID)
	if err == nil {
		err = b.process(ctx, j, m)
	}
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		if err := b.jobs.Release(context.WithoutCancel(ctx), j); err != nil {
			b.log.Warn("bot: give back a message at shutdown; it waits for its lease", "id", m.MsgID, "err", err)
		}
		return
	}
	if err := b.fail(ctx, j, m, err); err != nil {
		b.log.Error("bot: record failed handling", "chat", m.Chat, "id", m.MsgID, "err", err)
	}
}
