package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/phone"
)

// Limits on a request's fields.
const (
	// MaxTextBytes is the longest text accepted, in bytes of UTF-8: far more
	// than a notification needs, small enough to keep rows and sends cheap.
	MaxTextBytes = 65536
	// MaxIdempotencyKeyBytes is the longest idempotency key accepted.
	MaxIdempotencyKeyBytes = 255
)

// Request is a message to enqueue.
type Request struct {
	// To is the chat: a JID such as 4915123456789@s.whatsapp.net or
	// 1203630...@g.us, or a bare phone number in international form.
	To string
	// Text is the message body.
	Text string
	// IdempotencyKey, when set, makes a repeated Enqueue return the message
	// first enqueued with it (for as long as that row is kept).
	IdempotencyKey string
}

// Enqueue stores the message as pending and returns it with created true,
// or returns the message already stored under req.IdempotencyKey with
// created false (the repeat's To and Text are then ignored). It refuses
// with ErrInvalid for a malformed request and ErrBacklogFull while
// MaxPending messages are pending or sending.
func (q *Queue) Enqueue(ctx context.Context, req Request) (Message, bool, error) {
	chat, err := normalizeChat(req.To)
	if err != nil {
		return Message{}, false, err
	}
	if err := validateText(req.Text); err != nil {
		return Message{}, false, err
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKeyBytes || !utf8.ValidString(req.IdempotencyKey) || strings.ContainsRune(req.IdempotencyKey, 0) {
		return Message{}, false, fmt.Errorf("%w: idempotency key must be valid UTF-8 of at most %d bytes", ErrInvalid, MaxIdempotencyKeyBytes)
	}
	if chat, err = q.phoneChat(ctx, chat); err != nil {
		return Message{}, false, err
	}
	msg, created, err := q.insert(ctx, chat, req)
	if err != nil {
		if errors.Is(err, ErrBacklogFull) {
			q.stats.rejected.Add(1)
		}
		return Message{}, false, err
	}
	if created {
		q.stats.enqueued.Add(1)
		q.wakeUp()
	}
	return msg, created, nil
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// byKey finds the message enqueued under an idempotency key.
func (q *Queue) byKey(ctx context.Context, db querier, key string) (Message, bool, error) {
	m, err := scanRow(db.QueryRowContext(ctx, "SELECT "+columns+
		" FROM blacksky_outbox WHERE session_id = $1 AND idempotency_key = $2", q.opts.Session, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("enqueue: look up idempotency key: %w", err)
	}
	return m, true, nil
}

// lockKey is the advisory lock serialising one account's enqueues.
func (q *Queue) lockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("blacksky_outbox\x00" + q.opts.Session))
	return int64(h.Sum64())
}

// normalizeChat turns To into the canonical JID string that orders the
// chat's messages, so two spellings of one chat share one FIFO.
func normalizeChat(to string) (string, error) {
	to = strings.TrimSpace(to)
	if to == "" {
		return "", fmt.Errorf("%w: recipient is empty", ErrInvalid)
	}
	if !strings.Contains(to, "@") {
		n, err := phone.Normalize(to)
		if err != nil {
			return "", fmt.Errorf("%w: recipient %q: %v", ErrInvalid, to, err)
		}
		return types.NewJID(n, types.DefaultUserServer).String(), nil
	}
	jid, err := types.ParseJID(to)
	if err != nil {
		return "", fmt.Errorf("%w: recipient %q: %v", ErrInvalid, to, err)
	}
	if jid.Device == 0 && jid.RawAgent == 0 && jid.String() != to {
		// ParseJID reads "x@s.whatsapp.net@anything" as x@s.whatsapp.net:
		// refuse what it would have to drop.
		return "", fmt.Errorf("%w: recipient %q is not a JID as WhatsApp writes it (%s); remove what follows", ErrInvalid, to, jid)
	}
	if jid.User == "" {
		return "", fmt.Errorf("%w: recipient %q has no user part", ErrInvalid, to)
	}
	if jid.Device != 0 || jid.RawAgent != 0 {
		return "", fmt.Errorf("%w: recipient %q names a device; use the chat JID", ErrInvalid, to)
	}
	switch jid.Server {
	case types.DefaultUserServer:
		if _, err := phone.Normalize(jid.User); err != nil {
			return "", fmt.Errorf("%w: recipient %q: %v", ErrInvalid, to, err)
		}
	case types.GroupServer, types.HiddenUserServer, types.NewsletterServer:
	default:
		return "", fmt.Errorf("%w: recipient %q: cannot send to server %q", ErrInvalid, to, jid.Server)
	}
	return jid.String(), nil
}

// phoneChat names a LID chat by its phone number when whatsmeow's LID map
// (whatsmeow_lid_map, in the same database) knows it, so that a contact is
// one chat, one FIFO, whether a message names it by number or by LID, and
// across its move from one to the other; whatsmeow sends to the LID either
// way. Other chats are returned as they are.
func (q *Queue) phoneChat(ctx context.Context, chat string) (string, error) {
	lid, ok := strings.CutSuffix(chat, "@"+types.HiddenUserServer)
	if !ok {
		return chat, nil
	}
	var pn string
	err := q.db.QueryRowContext(ctx, "SELECT pn FROM whatsmeow_lid_map WHERE lid = $1", lid).Scan(&pn)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return chat, nil
	case err != nil:
		return "", fmt.Errorf("enqueue: look up the phone number of %s: %w", chat, err)
	}
	return types.NewJID(pn, types.DefaultUserServer).String(), nil
}

func validateText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: text is empty", ErrInvalid)
	case len(text) > MaxTextBytes:
		return fmt.Errorf("%w: text is %d bytes, more than %d", ErrInvalid, len(text), MaxTextBytes)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: text is not valid UTF-8", ErrInvalid)
	case strings.ContainsRune(text, 0):
		// PostgreSQL text cannot hold NUL; refuse it on both engines alike.
		return fmt.Errorf("%w: text contains a NUL character", ErrInvalid)
	}
	return nil
}
