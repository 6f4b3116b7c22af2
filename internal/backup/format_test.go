package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
)

// testSnapshot is a small session that needs no database.
func testSnapshot() *Session {
	jid := types.NewADJID("15550000001", 0, 7)
	return &Session{
		SessionID: testSession,
		JID:       jid,
		CreatedAt: time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC),
		PairedAt:  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Tables: []Table{
			{
				Name: "whatsmeow_device",
				Columns: []Column{
					{"jid", KindText}, {"registration_id", KindInt}, {"noise_key", KindBytes},
					{"lid", KindText}, {"platform", KindText},
				},
				Rows: [][]any{{jid.String(), int64(4294967295), bytes.Repeat([]byte{0xff}, 32), nil, "android"}},
			},
			{
				Name:    "whatsmeow_pre_keys",
				Columns: []Column{{"jid", KindText}, {"key_id", KindInt}, {"key", KindBytes}, {"uploaded", KindBool}},
				Rows: [][]any{
					{jid.String(), int64(1), []byte{1, 2, 3}, true},
					{jid.String(), int64(2), []byte{}, false},
				},
			},
		},
	}
}

func encodeTest(t testing.TB, s *Session, pass string) []byte {
	t.Helper()
	data, err := testKeyring(t, pass).encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	want := testSnapshot()
	data := encodeTest(t, want, testPass)
	if !bytes.HasPrefix(data, []byte("blacksky-backup v1\n{\"created_at\":\"2026-11-27T03:04:05Z\",\"session_id\":\"default\",\"jid\":\"15550000001:7@s.whatsapp.net\"")) {
		t.Errorf("header does not start as documented: %q", data[:120])
	}
	if bytes.Contains(data, []byte("android")) {
		t.Error("row data appears in plaintext")
	}
	got, err := Decode(data, testPass)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	sameSession(t, want, got)
	info, err := Inspect(data)
	if err != nil || info.SessionID != testSession || info.JID != want.JID || !info.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("Inspect = %+v, %v", info, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	good := encodeTest(t, testSnapshot(), testPass)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	// resum re-seals the checksum over altered content, as an attacker
	// (not a disk) would.
	resum := func(b []byte) []byte {
		body := b[:len(b)-sha256.Size]
		sum := sha256.Sum256(body)
		return append(bytes.Clone(body), sum[:]...)
	}
	headerEnd := bytes.IndexByte(good[len(magic)+1:], '\n') + len(magic) + 1
	tests := []struct {
		name string
		data []byte
		pass string
		want error
	}{
		{"empty", nil, testPass, ErrCorrupt},
		{"garbage", []byte("SQLite format 3\x00 and then some"), testPass, ErrCorrupt},
		{"magic only", []byte(magic + "\n"), testPass, ErrCorrupt},
		{"newer version", append([]byte("blacksky-backup v2\n"), good[len(magic)+1:]...), testPass, ErrCorrupt},
		{"truncated by one byte", good[:len(good)-1], testPass, ErrCorrupt},
		{"truncated in the ciphertext", good[:headerEnd+10], testPass, ErrCorrupt},
		{"truncated in the header", good[:40], testPass, ErrCorrupt},
		{"byte flipped in the magic", flip(3), testPass, ErrCorrupt},
		{"byte flipped in the header", flip(30), testPass, ErrCorrupt},
		{"byte flipped in the ciphertext", flip(headerEnd + 20), testPass, ErrCorrupt},
		{"byte flipped in the checksum", flip(len(good) - 1), testPass, ErrCorrupt},
		{"ciphertext altered, checksum redone", resum(flip(headerEnd + 20)), testPass, ErrCorrupt},
		{"header altered, checksum redone", resum(bytes.Replace(good, []byte(`"default"`), []byte(`"defaulu"`), 1)), testPass, ErrCorrupt},
		{"wrong passphrase", good, "another passphrase, long enough", ErrWrongKey},
		{"no passphrase", good, "", ErrNoKey},
		{"short passphrase", good, "too short", ErrKeyTooShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Decode(tt.data, tt.pass)
			if !errors.Is(err, tt.want) || s != nil {
				t.Fatalf("Decode = %v, %v; want %v", s, err, tt.want)
			}
			if tt.want == ErrCorrupt && errors.Is(err, ErrWrongKey) || tt.want == ErrWrongKey && errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v is both corrupt and wrong key", err)
			}
		})
	}
}

func TestEncodeRefusesWithoutKey(t *testing.T) {
	t.Parallel()
	for _, pass := range []string{"", "fifteen chars!!", "ünïcödé ünïcö"} {
		if data, err := Encode(testSnapshot(), pass); err == nil || data != nil {
			t.Errorf("Encode with passphrase %q = %d bytes, %v; want an error", pass, len(data), err)
		}
	}
	if _, err := Encode(testSnapshot(), ""); !errors.Is(err, ErrNoKey) {
		t.Errorf("Encode without a key = %v, want ErrNoKey", err)
	}
}

// The production parameters produce a backup that Decode opens.
func TestDefaultKDF(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("derives a 64 MiB Argon2id key")
	}
	data, err := Encode(testSnapshot(), testPass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"memory_kib":65536`)) {
		t.Errorf("header does not record the default parameters: %.300s", data)
	}
	if _, err := Decode(data, testPass); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecode feeds Decode arbitrary files, and the header parser files
// whose checksum was fixed up so the fuzzer gets past it.
func FuzzDecode(f *testing.F) {
	good := encodeTest(f, testSnapshot(), testPass)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(magic + "\n{}\n"))
	f.Add([]byte("blacksky-backup v1\n{\"kdf\":{\"name\":\"argon2id\",\"memory_kib\":4294967295}}\n" + string(make([]byte, 32))))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data, testPass)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("Decode error %v is neither ErrCorrupt nor ErrWrongKey", err)
			}
		} else if err := s.validate(); err != nil {
			t.Fatalf("Decode returned an invalid session: %v", err)
		}
		if len(data) >= sha256.Size {
			body := data[:len(data)-sha256.Size]
			sum := sha256.Sum256(body)
			_, prefix, ct, err := parse(append(bytes.Clone(body), sum[:]...))
			if err == nil {
				if !bytes.HasPrefix(prefix, []byte(magic+"\n")) || !bytes.Equal(append(bytes.Clone(prefix), ct...), body) {
					t.Fatal("parse split the file wrongly")
				}
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parse error %v is not ErrCorrupt", err)
			}
		}
	})
}

// FuzzDecodePayload feeds the payload decoder, which only ever sees
// authenticated data, arbitrary JSON all the same.
func FuzzDecodePayload(f *testing.F) {
	s := testSnapshot()
	seed, err := json.Marshal(payload{PairedAt: s.PairedAt.UnixMilli(), Tables: s.Tables})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"tables":[{"name":"whatsmeow_device","columns":[{"name":"jid","kind":"text"}],"rows":[[null]]}]}`))
	h := header{SessionID: s.SessionID, JID: s.JID.String(), CreatedAt: s.CreatedAt}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodePayload(bytes.NewReader(data), h)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodePayload error %v is not ErrCorrupt", err)
			}
			return
		}
		if err := got.validate(); err != nil {
			t.Fatalf("decodePayload returned an invalid session: %v", err)
		}
		if _, err := json.Marshal(payload{Tables: got.Tables}); err != nil {
			t.Fatalf("a decoded session does not encode again: %v", err)
		}
	})
}
