package backup

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// A snapshot taken on one engine restores into an empty database of
// either engine, which is also how an operator migrates.
func TestRoundTripAcrossEngines(t *testing.T) {
	t.Parallel()
	for _, from := range kinds {
		for _, to := range kinds {
			t.Run(fmt.Sprintf("%s to %s", from, to), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				src, dst := openStore(t, from), openStore(t, to)
				dev := pairDevice(t, src, testSession, "15550000001")
				snap, err := Snapshot(ctx, src, testSession)
				if err != nil {
					t.Fatal(err)
				}
				data, err := testKeyring(t, testPass).encode(snap)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Decode(data, testPass)
				if err != nil {
					t.Fatal(err)
				}
				if err := Restore(ctx, dst, got); err != nil {
					t.Fatal(err)
				}

				jid, ok, err := dst.Account(ctx, testSession)
				if err != nil || !ok || jid != *dev.ID {
					t.Fatalf("Account after restore = %v, %v, %v; want %v", jid, ok, err, *dev.ID)
				}
				back, err := dst.Container().GetDevice(ctx, jid)
				if err != nil || back == nil {
					t.Fatalf("GetDevice after restore = %v, %v", back, err)
				}
				checks := []struct {
					name      string
					got, want []byte
				}{
					{"identity key", back.IdentityKey.Priv[:], dev.IdentityKey.Priv[:]},
					{"noise key", back.NoiseKey.Priv[:], dev.NoiseKey.Priv[:]},
					{"signed pre-key", back.SignedPreKey.Priv[:], dev.SignedPreKey.Priv[:]},
					{"adv secret", back.AdvSecretKey, dev.AdvSecretKey},
					{"account signature", back.Account.AccountSignature, dev.Account.AccountSignature},
				}
				for _, c := range checks {
					if !bytes.Equal(c.got, c.want) {
						t.Errorf("%s differs after restore", c.name)
					}
				}
				if back.RegistrationID != dev.RegistrationID || back.LID != dev.LID || back.FacebookUUID != dev.FacebookUUID || back.PushName != dev.PushName {
					t.Errorf("device after restore = reg %d lid %s uuid %s push %q; want %d %s %s %q",
						back.RegistrationID, back.LID, back.FacebookUUID, back.PushName,
						dev.RegistrationID, dev.LID, dev.FacebookUUID, dev.PushName)
				}
				if want, got := deviceRows(t, src, jid), deviceRows(t, dst, jid); !maps.Equal(want, got) {
					t.Errorf("rows per table after restore = %v, want %v", got, want)
				}
				for name, n := range deviceRows(t, src, jid) {
					if n == 0 {
						t.Errorf("test data has no rows in %s: the round trip does not cover it", name)
					}
				}
				again, err := Snapshot(ctx, dst, testSession)
				if err != nil {
					t.Fatal(err)
				}
				sameSession(t, snap, again)
				// whatsmeow itself reads the restored rows.
				settings, err := back.ChatSettings.GetChatSettings(ctx, types.NewJID("15550009999", types.DefaultUserServer))
				if err != nil || !settings.Pinned {
					t.Errorf("chat settings after restore = %+v, %v; want pinned", settings, err)
				}
				if n, err := back.PreKeys.UploadedPreKeyCount(ctx); err != nil || n != 3 {
					t.Errorf("uploaded pre-keys after restore = %d, %v; want 3", n, err)
				}
			})
		}
	}
}

// Restore replaces the device's rows: what was added after the snapshot
// is gone, other devices are untouched.
func TestRestoreReplacesOnlyTheDevice(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, kind)
			dev := pairDevice(t, st, testSession, "15550000001")
			other := pairDevice(t, st, "other", "15550000002")
			snap, err := Snapshot(ctx, st, testSession)
			if err != nil {
				t.Fatal(err)
			}
			want := deviceRows(t, st, *dev.ID)
			otherWant := deviceRows(t, st, *other.ID)
			for i := range 4 {
				if err := dev.Sessions.PutSession(ctx, fmt.Sprintf("1777000000%d.0:0", i), randBytes(10)); err != nil {
					t.Fatal(err)
				}
			}
			if err := Restore(ctx, st, snap); err != nil {
				t.Fatal(err)
			}
			if got := deviceRows(t, st, *dev.ID); !maps.Equal(got, want) {
				t.Errorf("rows after restore = %v, want the snapshot's %v", got, want)
			}
			if got := deviceRows(t, st, *other.ID); !maps.Equal(got, otherWant) {
				t.Errorf("other device's rows after restore = %v, want %v", got, otherWant)
			}
		})
	}
}

// A snapshot whose rows name another device is refused before anything
// is written: a backup can only ever replace its own device.
func TestRestoreRefusesForeignRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, store.SQLite)
	pairDevice(t, st, testSession, "15550000001")
	snap, err := Snapshot(ctx, st, testSession)
	if err != nil {
		t.Fatal(err)
	}
	sessions := snap.table("whatsmeow_sessions")
	sessions.Rows[0][colIndex(sessions, "our_jid")] = "15550000002:7@s.whatsapp.net"
	if err := Restore(ctx, st, snap); err == nil {
		t.Fatal("Restore accepted rows of another device")
	}
}
