package bot

import (
	"context"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// A chat has written once the inbox holds a message it sent; one the
// account sent from its phone, or a message in another session, does not count.
func TestHasWritten(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, nil)
			ctx := context.Background()
			written := HasWritten(f.st.DB(), "s")
			check := func(chat string, want bool) {
				t.Helper()
				got, err := written(ctx, chat)
				if err != nil || got != want {
					t.Errorf("HasWritten(%s) = %v, %v; want %v", chat, got, err, want)
				}
			}
			check(strangerJID, false)

			fromPhone := msg(strangerJID, "sent from the account's phone")
			fromPhone.FromMe = true
			if _, err := f.bot.Store(ctx, fromPhone); err != nil {
				t.Fatal(err)
			}
			check(strangerJID, false)

			if _, err := f.bot.Store(ctx, msg(strangerJID, "hello")); err != nil {
				t.Fatal(err)
			}
			check(strangerJID, true)
			check(ownerJID, false)
			if got, err := HasWritten(f.st.DB(), "other")(ctx, strangerJID); err != nil || got {
				t.Errorf("another session's HasWritten = %v, %v; want false", got, err)
			}
		})
	}
}
