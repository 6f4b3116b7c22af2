package bot

import (
	"context"
	"sync"
	"time"
)

// headBatch is how many chats one look at the inbox considers.
const headBatch = 256

// Run handles stored messages until ctx ends: up to Workers chats at once,
// each chat's messages one at a time in the order they arrived, and sends
// the owners the connected notice on the first connection. It returns nil
// after ctx ends and waits for handlings under way. Database errors are
// logged and retried, never returned. Run it only in the process that holds
// the account (account.Options.OnLeader); one Run per Bot at a time.
func (b *Bot) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer b.running.Store(false)
	var (
		mu   sync.Mutex
		busy = map[string]bool{}
		wg   sync.WaitGroup
		sem  = make(chan struct{}, b.opts.Workers)
	)
	defer wg.Wait()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		wait := b.opts.PollInterval
		hs, err := b.heads(ctx, headBatch)
		if err != nil && ctx.Err() == nil {
			b.log.Error("bot: look for pending messages", "err", err)
		}
		now := b.opts.Now()
		for _, h := range hs {
			mu.Lock()
			taken := busy[h.chat]
			mu.Unlock()
			if taken {
				continue
			}
			if h.runAt.After(now) {
				wait = min(wait, h.runAt.Sub(now))
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			mu.Lock()
			busy[h.chat] = true
			mu.Unlock()
			wg.Add(1)
			go func(chat string) {
				defer wg.Done()
				b.drain(ctx, chat)
				mu.Lock()
				delete(busy, chat)
				mu.Unlock()
				<-sem
				b.signal()
			}(h.chat)
		}
		timer := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-b.wake:
		case <-timer.C:
		case <-b.connected:
			if !b.notified.Load() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b.notifyOnce(ctx)
				}()
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

// drain handles chat's due messages in order; it stops at a message that
// is not due yet or whose handling failed, so none overtakes it.
func (b *Bot) drain(ctx context.Context, chat string) {
	for ctx.Err() == nil {
		m, runAt, ok, err := b.next(ctx, chat)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Error("bot: load pending message", "chat", chat, "err", err)
			}
			return
		}
		if !ok || runAt.After(b.opts.Now()) {
			return
		}
		if err := b.process(ctx, m); err != nil {
			if ctx.Err() != nil {
				// Shutting down: the message stays pending and is handled
				// again at the next start; this was not its fault.
				return
			}
			if err := b.reschedule(ctx, m, err); err != nil {
				b.log.Error("bot: record failed handling", "chat", chat, "id", m.MsgID, "err", err)
			}
			return
		}
	}
}
