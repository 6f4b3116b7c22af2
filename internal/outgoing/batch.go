package outgoing

import (
	"context"
	"sync"
	"time"
)

// Writes that many callers make at once (enqueues, and recording sends)
// are group-committed: callers that arrive while a transaction is being
// written wait for the next one and share it, so a burst pays for one
// writer turn and one commit (one WAL flush) per batch instead of per
// call, while every caller still returns only once its own write is
// durable.

const (
	// maxBatch bounds the calls one transaction carries.
	maxBatch = 256
	// commitTimeout bounds one batch's transaction; it runs on its own
	// context, since one caller giving up must not fail the others.
	commitTimeout = 30 * time.Second
)

// call is one caller's write waiting for a batch; the batch's write sets
// the caller's outcome, and the batcher then releases it (its caller goes on).
type call struct {
	done chan struct{}
}

func newCall() call { return call{done: make(chan struct{})} }

func (c call) release() { close(c.done) }

// batched is what a batcher needs of a call: it can be told that its
// whole batch failed, and be released to its caller.
type batched interface {
	fail(err error)
	release()
}

// batcher gathers concurrent calls of type C into shared transactions.
type batcher[C batched] struct {
	turn    chan struct{} // a one-slot semaphore: whoever holds it commits
	mu      sync.Mutex
	waiting []C
	// write stores a batch in one transaction; an error fails every call in it.
	write func(ctx context.Context, batch []C) error
}

func newBatcher[C batched](write func(context.Context, []C) error) *batcher[C] {
	return &batcher[C]{turn: make(chan struct{}, 1), write: write}
}

// do queues c and returns once c is released, committing batches itself
// while nobody else does. If ctx ends first it returns ctx.Err(), and c
// may still be written by the batch it was already in.
func (b *batcher[C]) do(ctx context.Context, c C, done <-chan struct{}) error {
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	b.mu.Unlock()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case b.turn <- struct{}{}:
			// Our call may have gone out with the batch that just ended.
			if batch := b.take(); len(batch) > 0 {
				b.commit(context.WithoutCancel(ctx), batch)
			}
			<-b.turn
		}
	}
}

// commit writes batch and releases every call in it, whatever happens.
func (b *batcher[C]) commit(ctx context.Context, batch []C) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	err := b.write(ctx, batch)
	for _, c := range batch {
		if err != nil {
			c.fail(err)
		}
		c.release()
	}
}

// take removes up to maxBatch waiting calls, oldest first.
func (b *batcher[C]) take() []C {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.waiting), maxBatch)
	batch := b.waiting[:n:n]
	b.waiting = b.waiting[n:]
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	return batch
}
