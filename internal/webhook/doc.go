// Package webhook delivers the bot's events (incoming messages, outgoing
// messages' delivery states) to an HTTP endpoint: every event is first
// written to a durable table, then POSTed as JSON signed with HMAC-SHA256,
// retried with exponential backoff and jitter until the endpoint answers 2xx,
// and dead-lettered after MaxAttempts. Each event keeps one ID and one body
// across all its attempts, so the receiver can deduplicate.
//
// Requests carry these headers:
//
//	Content-Type: application/json
//	X-Blacksky-Event-Id: <event ID, the same on every attempt>
//	X-Blacksky-Event: <kind, e.g. message.received>
//	X-Blacksky-Timestamp: <Unix seconds of this attempt>
//	X-Blacksky-Attempt: <1, 2, ...>
//	X-Blacksky-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>
//
// The body is {"id","type","session","created_at","data"}; created_at is
// inside the signed body, so a receiver can refuse old replays. Types:
// message.received (data: the incoming message, from the bot package),
// message.sent and message.dead (data: OutgoingStatus, written by
// OutgoingSettled in the same transaction as the outgoing queue's state change),
// message.undecryptable (data: the bot package's Undecryptable; the message
// follows as message.received if the phone sends it again), and the
// account's connection and pairing (account.go, AccountEvents):
// account.state, account.qr, account.pair_code, account.paired and
// account.logged_out. Those are stored from a goroutine of their own, after
// the change and not with it: one may be lost if the process dies first, or
// dropped when the database fails for longer than a small buffer lasts.
package webhook
