package metadata

import (
	"context"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// batcher groups the Batch calls of one process's goroutines into shared
// transactions: while one goroutine (the leader) waits for the store's
// lock and commits, the calls that arrive meanwhile queue up, and the next
// leader commits all of them at once. `rm -f` of 50 containers deletes
// their records in a few commits instead of 50, each of which costs two
// fsyncs under the exclusive lock that every other berth process waits on.
type batcher struct {
	mu      sync.Mutex
	queue   []*batchCall
	leading bool // a leader is working; the queue waits for it
}

type batchCall struct {
	fn   func(*Tx) error
	done chan error    // the call's outcome
	lead chan struct{} // this call's goroutine leads the next batch
}

// Batch runs fn in a read-write transaction, which it may share with the
// Batch calls of other goroutines of this process, and commits it. fn may
// run more than once: when a function of a shared transaction fails, that
// one returns its error and the others run again, each on its own. So fn
// must act only through tx (and return the same answer when run again).
// The leader's ctx bounds the wait for the store's lock of the whole batch.
func (s *Store) Batch(ctx context.Context, fn func(*Tx) error) error {
	call := &batchCall{fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	b := &s.batch
	b.mu.Lock()
	b.queue = append(b.queue, call)
	if !b.leading {
		b.leading = true
		call.lead <- struct{}{}
	}
	b.mu.Unlock()
	select {
	case err := <-call.done:
		return err
	case <-call.lead:
		s.leadBatch(ctx)
		return <-call.done
	}
}

// leadBatch commits every queued call (its own among them) in one
// transaction, then hands the lead to the first call queued meanwhile.
func (s *Store) leadBatch(ctx context.Context) {
	b := &s.batch
	// Taking the lock first lets the calls made while it is held
	// elsewhere join this batch.
	h, err := s.open(ctx, true)
	b.mu.Lock()
	calls := b.queue
	b.queue = nil
	b.mu.Unlock()
	if err != nil {
		for _, c := range calls {
			c.done <- err
		}
	} else {
		s.commitBatch(ctx, h, calls)
	}
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].lead <- struct{}{}
	} else {
		b.leading = false
	}
	b.mu.Unlock()
}

// commitBatch runs calls in one transaction of h, which it closes.
func (s *Store) commitBatch(ctx context.Context, h *handle, calls []*batchCall) {
	failed := -1
	err := s.guard(h, func() error {
		return h.db.Update(func(tx *bolt.Tx) error {
			if err := s.checkSize(tx, h.file); err != nil {
				return err
			}
			if err := s.checkPages(tx, h.file); err != nil {
				return err
			}
			for i, c := range calls {
				if err := callCaller(func() error { return c.fn(&Tx{tx: tx}) }); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
	})
	h.close()
	if failed < 0 || len(calls) == 1 {
		for _, c := range calls {
			c.done <- err
		}
		return
	}
	// One call failed and took the others' changes with it: it keeps
	// its error, they run again alone.
	calls[failed].done <- err
	for i, c := range calls {
		if i != failed {
			c.done <- s.Update(ctx, c.fn)
		}
	}
}

// Commits is the number of transactions committed to the store so far
// (bbolt's transaction id), for tests that count what an operation
// writes.
func (s *Store) Commits(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.View(ctx, func(tx *Tx) error {
		n = uint64(tx.tx.ID())
		return nil
	})
	return n, err
}
