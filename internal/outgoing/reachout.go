package outgoing

// WhatsApp's reach-out lock. WhatsApp may lock an account out of starting
// conversations for a while (days, on real accounts): a message to someone
// who has not written to the account is refused with error 463, while
// replies to people who wrote still go through, and the account's devices
// are told of the lock and when it ends (a "mex" notification, whatsmeow's
// events.NotifyAccountReachoutTimelock). Nothing shows WhatsApp saying so
// when a lock runs out; it does say so when it lifts one early.
//
// The queue keeps the lock as this process learnt it while it holds the
// account (one Run), in memory:
//
//   - A notification puts it in force until its announced end, or ends it.
//   - A 463 puts it in force when it was not (until DefaultReachoutLock from
//     now, since the refusal carries no end), and the refused message waits.
//   - While it is in force, the head of a chat that has not written to the
//     account (Options.HasWritten) is not sent but waits; other chats flow.
//
// A message that waits is pending with its attempt given back, run_at at
// the lock's end and last_error saying why (reachoutWaiting), so it counts
// toward neither OUTGOING_MAX_ATTEMPTS nor dead, keeps its chat's later
// messages behind it, goes out when the lock ends, and waits the same way
// under another process after a restart or hand-over: the lock's end is
// read back from the waiting rows (resumeReachout). OUTGOING_TTL still
// applies: a message older than it expires whatever it waited for.
//
// The owner is alerted once per lock (Options.Alert). A lock is over for
// that purpose when WhatsApp says so, when its announced end passes, or
// when a message to a chat that has not written goes through; a lock only
// assumed from a 463 that runs out without such proof is the same lock
// when the next 463 comes.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// ErrReachoutLocked is a send WhatsApp refused with error 463: the account
// may not write to this chat until its reach-out lock ends.
var ErrReachoutLocked = errors.New("refused by WhatsApp's reach-out lock (error 463)")

// DefaultReachoutLock is how long the lock is taken to last when a 463
// comes without an announced end. WhatsApp announces the end when it
// imposes a lock, so this covers a 463 whose notification was missed (it
// went to another process) or that has another cause (WhatsApp returns 463
// also for a missing privacy token, which clears sooner). An hour costs at
// most one refused message per hour while the lock lasts, and delays
// messages to new contacts by at most an hour after it silently ends.
const DefaultReachoutLock = time.Hour

// reachoutWaiting begins last_error of every message waiting out the lock;
// releaseWaiting finds them by it. It has no LIKE wildcards.
const reachoutWaiting = "reach-out lock: waiting until "

// ReachoutLock is the lock's state as this process knows it, for /status.
type ReachoutLock struct {
	Active bool      `json:"active"`
	Until  time.Time `json:"until,omitzero"`
	// Announced is true when WhatsApp named the end; false when it is
	// assumed from a refusal (DefaultReachoutLock).
	Announced bool `json:"announced,omitempty"`
	// Refusals counts 463 answers this process got.
	Refusals int64 `json:"refusals"`
}

// reachout is the lock's state; every field is guarded by mu.
type reachout struct {
	mu        sync.Mutex
	until     time.Time // in force while now is before it
	announced bool
	refusals  int64
	// episode is set from the first sign of a lock until proof it is over;
	// the owner is alerted when it is set.
	episode  bool
	alertDue bool // the dispatcher owes the owner an alert
	release  bool // waiting messages are to be looked at again now
	// seq counts what changes the lock; a send takes a mark of it when it
	// begins, so "before" and "after" below are orders of events rather
	// than of clock readings, which can be equal (the fake clock in the
	// tests never moves by itself, and TestReachoutNoticeHoldsUntilLifted
	// failed when a lift and the refusal of a send begun before it read the
	// same instant).
	seq    sendMark
	lifted sendMark // when WhatsApp last said the lock is over; 0: never
	began  sendMark // when the lock in force became known
}

// sendMark is the lock's sequence number when a send began (reachout.mark).
type sendMark uint64

// mark returns the mark a send takes when it begins.
func (r *reachout) mark() sendMark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// inForce returns the lock's end if it is in force at now.
func (r *reachout) inForce(now time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	return r.until, !r.until.IsZero()
}

// expireLocked forgets a lock whose end has passed; an announced end is
// proof the lock is over.
func (r *reachout) expireLocked(now time.Time) {
	if r.until.IsZero() || now.Before(r.until) {
		return
	}
	if r.announced {
		r.episode = false
	}
	r.until, r.announced = time.Time{}, false
}

// beginLocked marks a lock known at now, owing the owner an alert unless
// this lock already had one.
func (r *reachout) beginLocked(now time.Time) {
	r.expireLocked(now)
	if r.until.IsZero() {
		r.seq++
		r.began = r.seq
	}
	if !r.episode {
		r.episode, r.alertDue = true, true
	}
}

// notice applies WhatsApp's notification of the lock's state. Waiting
// messages are looked at again whatever it says: the end may have moved.
func (r *reachout) notice(now time.Time, active bool, ends time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release = true
	switch {
	case active && ends.After(now):
		r.beginLocked(now)
		r.until, r.announced = ends, true
	case active && ends.IsZero():
		// In force with no end named: as after a refusal.
		r.beginLocked(now)
		r.until, r.announced = now.Add(DefaultReachoutLock), false
	default:
		r.until, r.announced, r.episode = time.Time{}, false, false
		r.seq++
		r.lifted = r.seq
	}
}

// refused records a 463 at now for a send that took mark sent when it
// began, and returns the end to wait for. A refusal of a send begun before WhatsApp said the lock
// was over belongs to that lock: it starts none (the short chaos run saw the
// lift notice overtake the 463 of a message in flight, which then waited an
// assumed hour), and the message may go again at once.
func (r *reachout) refused(sent sendMark, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusals++
	if r.lifted > sent {
		return now
	}
	r.expireLocked(now)
	if r.until.IsZero() {
		r.beginLocked(now)
		r.until, r.announced = now.Add(DefaultReachoutLock), false
	}
	return r.until
}

// reached records that a message to a chat that had not written went
// through: whatever lock there was is over.
func (r *reachout) reached(sent sendMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.until.IsZero() && sent < r.began {
		// Begun before the lock was known: it went through before the
		// lock, or WhatsApp let a message in flight pass; no proof.
		return
	}
	r.until, r.announced, r.episode = time.Time{}, false, false
}

// releaseAgain owes the look at waiting messages again, after it failed.
func (r *reachout) releaseAgain() {
	r.mu.Lock()
	r.release = true
	r.mu.Unlock()
}

// episodeOpen reports whether a lock is not yet known to be over.
func (r *reachout) episodeOpen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.episode
}

// forget drops the lock as this process knew it while it held the
// account (the count of refusals stays, for the metric): whoever holds the
// account next may learn that the lock moved or ended, and this process,
// should it hold the account again, reads it back from the waiting
// messages (resume) and hears it anew from WhatsApp.
func (r *reachout) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.until, r.announced, r.episode, r.alertDue, r.release = time.Time{}, false, false, false, false
	r.lifted, r.began = 0, 0
}

// resume takes a lock an earlier process knew (its waiting messages, or
// the end WhatsApp announced to it), which alerted the owner already; a
// later end known here wins, unless the end given was announced.
func (r *reachout) resume(now, until time.Time, announced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	if until.After(now) && (until.After(r.until) || announced) {
		if r.until.IsZero() {
			r.seq++
			r.began = r.seq
		}
		r.until, r.episode, r.announced = until, true, announced
	}
}

// chores returns, and clears, what the dispatcher owes: an alert (with the
// lock's end) and a look at the waiting messages.
func (r *reachout) chores() (alert bool, until time.Time, release bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	alert, release = r.alertDue, r.release
	r.alertDue, r.release = false, false
	return alert, r.until, release
}

func (r *reachout) status(now time.Time) ReachoutLock {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	return ReachoutLock{Active: !r.until.IsZero(), Until: r.until, Announced: r.announced, Refusals: r.refusals}
}

// ReachoutLock reports WhatsApp's reach-out lock as this process knows it.
func (q *Queue) ReachoutLock() ReachoutLock { return q.reachout.status(q.now()) }

// NoticeReachoutLock applies WhatsApp's notification of the account's
// reach-out lock: in force until ends when active, over otherwise. It only
// records; the dispatcher does the work, so it may be called from
// whatsmeow's event goroutine.
func (q *Queue) NoticeReachoutLock(active bool, ends time.Time) {
	now := q.now()
	q.reachout.notice(now, active, ends)
	q.log.Warn("WhatsApp's reach-out lock changed", "active", active, "ends", ends, "help", troubleshoot.ReachOut)
	q.wakeUp()
	if !active || !ends.After(now) {
		ends = time.Time{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := q.keepAnnounced(ctx, ends); err != nil {
		// This process still knows it; the next holder learns it from
		// the messages that wait for it, or assumes DefaultReachoutLock.
		q.log.Error("storing the reach-out lock's announced end failed", "ends", ends, "err", err)
	}
}

// keepAnnounced stores the lock's announced end (zero: over) for the next
// process to hold the account (resumeReachout).
func (q *Queue) keepAnnounced(ctx context.Context, ends time.Time) error {
	until := int64(0)
	if !ends.IsZero() {
		until = ms(ends)
	}
	_, err := q.db.ExecContext(ctx, `INSERT INTO blacksky_reachout (session_id, until, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (session_id) DO UPDATE SET until = excluded.until, updated_at = excluded.updated_at`,
		q.opts.Session, until, ms(q.now()))
	if err != nil {
		return fmt.Errorf("store the reach-out lock: %w", err)
	}
	return nil
}

// isReachoutRefusal reports whether err is whatsmeow's report of a message
// ack with error 463. whatsmeow formats the code into the text ("%w %d"),
// so the code is read from the error that wraps ErrServerReturnedError.
func isReachoutRefusal(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == whatsmeow.ErrServerReturnedError {
			code, ok := strings.CutPrefix(e.Error(), whatsmeow.ErrServerReturnedError.Error()+" ")
			n, convErr := strconv.Atoi(code)
			return ok && convErr == nil && n == 463
		}
	}
	return false
}

// reachoutReason is last_error of a message waiting for the lock to end.
func reachoutReason(until time.Time, why string) string {
	return reachoutWaiting + until.UTC().Format(time.RFC3339) + ": " + why
}

// reachoutAlert is the owner's alert for a lock in force until until.
func reachoutAlert(until time.Time) string {
	return fmt.Sprintf("WhatsApp has locked this account out of writing to new contacts until %s (reach-out lock, error 463). "+
		"Messages to people who have not written to the bot wait and go out when it ends; replies to people who wrote still go out.",
		until.UTC().Format("2006-01-02 15:04 MST"))
}

// hasWritten asks Options.HasWritten; without it no chat has written.
func (q *Queue) hasWritten(ctx context.Context, chat string) (bool, error) {
	if q.opts.HasWritten == nil {
		return false, nil
	}
	ok, err := q.opts.HasWritten(ctx, chat)
	if err != nil {
		return false, fmt.Errorf("has %s written to the account: %w", chat, err)
	}
	return ok, nil
}

// releaseWaiting makes every message waiting for the lock due now; those
// still held are postponed again when claimed.
func (q *Queue) releaseWaiting(ctx context.Context) (int64, error) {
	now := ms(q.now())
	res, err := q.db.ExecContext(ctx, `UPDATE blacksky_outbox SET run_at = $2
		WHERE session_id = $1 AND state = 'pending' AND run_at > $2 AND last_error LIKE $3`,
		q.opts.Session, now, reachoutWaiting+"%")
	if err != nil {
		return 0, fmt.Errorf("release messages waiting for the reach-out lock: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// resumeReachout reads back the lock an earlier process left messages
// waiting for.
func (q *Queue) resumeReachout(ctx context.Context) error {
	now := q.now()
	var until sql.NullInt64
	err := q.db.QueryRowContext(ctx, `SELECT max(run_at) FROM blacksky_outbox
		WHERE session_id = $1 AND state = 'pending' AND run_at > $2 AND last_error LIKE $3`,
		q.opts.Session, ms(now), reachoutWaiting+"%").Scan(&until)
	if err != nil {
		return fmt.Errorf("read back the reach-out lock: %w", err)
	}
	if until.Valid {
		q.reachout.resume(now, fromMS(until.Int64), false)
	}
	var announced int64
	err = q.db.QueryRowContext(ctx, `SELECT until FROM blacksky_reachout WHERE session_id = $1`, q.opts.Session).Scan(&announced)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read back the reach-out lock: %w", err)
	}
	if announced > 0 {
		q.reachout.resume(now, fromMS(announced), true)
	}
	return nil
}

// reachoutHeld postpones m until the lock ends when the lock is in force
// and m's chat has not written to the account; it reports whether it did.
func (d *dispatcher) reachoutHeld(ctx context.Context, log *slog.Logger, m Message) bool {
	q := d.q
	until, locked := q.reachout.inForce(q.now())
	if !locked {
		return false
	}
	written, err := q.hasWritten(ctx, m.To)
	if err != nil {
		// Unknown: a short wait, rather than a refusal or a reply held for
		// the whole lock.
		retry := q.now().Add(q.opts.PollInterval)
		if _, perr := q.postpone(ctx, m, "reach-out lock in force; "+err.Error(), retry); perr != nil {
			log.Error("postponing a message failed; its lease will bring it back", "err", perr)
		}
		return true
	}
	if written {
		return false
	}
	d.waitOutLock(ctx, log, m, until, "WhatsApp refuses messages to contacts who have not written to the account")
	return true
}

// waitOutLock postpones m until the lock's end.
func (d *dispatcher) waitOutLock(ctx context.Context, log *slog.Logger, m Message, until time.Time, why string) {
	ok, err := d.q.postpone(ctx, m, reachoutReason(until, why), until)
	if err != nil {
		log.Error("postponing a message for the reach-out lock failed; its lease will bring it back", "err", err)
		return
	}
	if ok {
		log.Info("message waits for WhatsApp's reach-out lock to end", "until", until)
	}
}

// reachedNewChat ends the lock's episode when m, whose send took mark sent,
// went to a chat that has not written: WhatsApp let it through, so no lock
// holds (unless the send began before the lock was known).
func (d *dispatcher) reachedNewChat(ctx context.Context, m Message, sent sendMark) {
	q := d.q
	if !q.reachout.episodeOpen() {
		return
	}
	if written, err := q.hasWritten(ctx, m.To); err == nil && !written {
		q.reachout.reached(sent)
	}
}

// reachoutChores does what the lock owes: a look at the waiting messages
// when it changed, and the owner's alert when it began.
func (d *dispatcher) reachoutChores(ctx context.Context) error {
	q := d.q
	alert, until, release := q.reachout.chores()
	if release {
		n, err := q.releaseWaiting(ctx)
		if err != nil {
			q.reachout.releaseAgain()
			return err
		}
		if n > 0 {
			d.log.Info("messages waiting for the reach-out lock are due again", "count", n)
		}
	}
	if alert && !until.IsZero() && q.opts.Alert != nil {
		q.opts.Alert(ctx, reachoutAlert(until))
	}
	return nil
}
