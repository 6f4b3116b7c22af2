package cli

import "time"

// The shutdown budget: what a clean stop (SIGTERM, Heroku's daily restart
// or a deploy) may take, step by step, all inside SHUTDOWN_TIMEOUT (25 s by
// default), itself inside the 30 s Heroku gives before it kills the
// process. The steps run one after another:
//
//  1. HTTP stops taking requests and lets those under way finish: each is
//     bounded by httpapi.DefaultRequestTimeout (10 s).
//  2. The account's work stops: the outgoing queue lets sends under way
//     finish for outgoingShutdownGrace and hands the rest back (they go out,
//     under the same IDs, after the restart); the bot's handlings and the
//     webhook's posts end with it, and what did not finish stays pending.
//  3. The connection closes (never a logout) and the lease is given back.
//  4. The final backup, bounded by finalBackupTimeout.
//
// TestShutdownBudgetFitsHeroku adds them up.
const (
	outgoingShutdownGrace = 5 * time.Second
	finalBackupTimeout    = 8 * time.Second
	// closeAllowance covers step 3 and the database's close.
	closeAllowance = time.Second
)
