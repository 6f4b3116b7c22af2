package proc

import (
	"bytes"
	"os"
	"sync"
)

// output is a process's stdout and stderr: written by exec's copying
// goroutine, read by any other. Each write wakes the waiters of WaitOutput.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
	file    *os.File      // the log file, or nil
	limit   int           // with a file: how much buf keeps; 0 keeps all
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		// A log that cannot be written is not the program's failure; the
		// tail in memory still has the output.
		o.file.Write(b)
	}
	o.buf.Write(b)
	if o.limit > 0 && o.buf.Len() > 2*o.limit {
		o.buf.Next(o.buf.Len() - o.limit)
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// contains reports whether the output holds s, and a channel closed at the
// next write.
func (o *output) contains(s string) (bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Contains(o.buf.Bytes(), []byte(s)), o.changed
}
