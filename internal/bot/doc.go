// Package bot turns incoming WhatsApp messages into command replies without
// ever losing one: each message is stored in the inbox table before WhatsApp
// gets its acknowledgement, then handled from that table by a worker (in
// order per chat), and marked handled afterwards. Replies go through the
// durable outgoing under an idempotency key derived from the incoming message,
// so a crash between a reply and the mark re-handles the message without a
// second reply.
//
// Commands are registered with Register and reached as PREFIX+name
// followed by arguments; menu, help, ping, status, queue, backup and
// reconnect are built in. Messages that are not commands are recorded and
// passed to the webhook, if one is configured, and otherwise ignored.
package bot
