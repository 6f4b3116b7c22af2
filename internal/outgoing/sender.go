package outgoing

import (
	"context"
	"errors"
)

// Sender delivers one message. It must use msg.WAID as the WhatsApp message
// ID, so that a repeated attempt is the same message to the recipient. An
// error wrapped with Permanent sends the message straight to dead; one
// wrapping ErrReachoutLocked makes it wait for WhatsApp's reach-out lock to
// end, without counting an attempt; any other error is retried with backoff.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, msg Message) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, msg Message) error { return f(ctx, msg) }

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure no retry can fix (invalid recipient, not
// on WhatsApp, too large); nil stays nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
