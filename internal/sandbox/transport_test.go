package sandbox

import (
	"bytes"
	"testing"
)

func TestFrameReaderSplitsAndMerges(t *testing.T) {
	f1, _ := encodeFrame([]byte("hello"))
	f2, _ := encodeFrame(bytes.Repeat([]byte{7}, 300))
	stream := append(append(append([]byte(nil), waHeader...), f1...), f2...)
	cases := []struct {
		name   string
		chunks [][]byte
	}{
		{"one message", [][]byte{stream}},
		{"byte by byte", splitEvery(stream, 1)},
		{"header split", [][]byte{stream[:2], stream[2:6], stream[6:]}},
		{"frame straddles messages", [][]byte{stream[:12], stream[12:]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r frameReader
			var got [][]byte
			for _, c := range tc.chunks {
				frames, err := r.feed(c)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, frames...)
			}
			if len(got) != 2 || string(got[0]) != "hello" || len(got[1]) != 300 {
				t.Fatalf("got %d frames", len(got))
			}
		})
	}
	var r frameReader
	if _, err := r.feed([]byte("GET / HTTP/1.1")); err == nil {
		t.Fatal("accepted a stream without the WA header")
	}
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// FuzzFrameReader checks that any split of a valid stream yields the original frames
// and that arbitrary input never panics.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("abc"), []byte{}, uint8(3))
	f.Add([]byte{}, []byte{0xff, 0xff}, uint8(1))
	f.Add(bytes.Repeat([]byte{1}, 70), []byte("x"), uint8(17))
	f.Fuzz(func(t *testing.T, a, b []byte, step uint8) {
		fa, _ := encodeFrame(a)
		fb, _ := encodeFrame(b)
		stream := append(append(append([]byte(nil), waHeader...), fa...), fb...)
		var r frameReader
		var got [][]byte
		for _, c := range splitEvery(stream, int(step%32)+1) {
			frames, err := r.feed(c)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, frames...)
		}
		if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
			t.Fatalf("reassembled %d frames", len(got))
		}
		var raw frameReader
		_, _ = raw.feed(append(append([]byte(nil), a...), b...))
	})
}
