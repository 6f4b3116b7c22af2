package sandbox

import (
	"bytes"
	"errors"
	"fmt"
)

// waHeader is what the client sends once, before its first frame.
var waHeader = []byte{'W', 'A', 6, 3}

const (
	frameLenSize = 3
	maxFrameSize = 1<<24 - 1
)

var errBadHeader = errors.New("connection header is not WA\\x06\\x03")

// frameReader reassembles client frames from websocket messages: the
// client may split a frame over several messages or pack several frames in one.
type frameReader struct {
	edge       edgePrefix // optional edge routing prefix before the header (edgerouting.go)
	headerSeen bool
	buf        []byte
}

// feed consumes one websocket message and returns every frame it completes.
func (r *frameReader) feed(msg []byte) ([][]byte, error) {
	r.buf = append(r.buf, msg...)
	if !r.headerSeen {
		rest, ok, err := r.edge.strip(r.buf)
		if !ok {
			return nil, err
		}
		r.buf = rest
		if len(r.buf) < len(waHeader) {
			if !bytes.HasPrefix(waHeader, r.buf) {
				return nil, errBadHeader
			}
			return nil, nil
		}
		if !bytes.Equal(r.buf[:len(waHeader)], waHeader) {
			return nil, errBadHeader
		}
		r.buf = r.buf[len(waHeader):]
		r.headerSeen = true
	}
	var frames [][]byte
	for len(r.buf) >= frameLenSize {
		n := int(r.buf[0])<<16 | int(r.buf[1])<<8 | int(r.buf[2])
		if len(r.buf) < frameLenSize+n {
			break
		}
		frame := make([]byte, n)
		copy(frame, r.buf[frameLenSize:frameLenSize+n])
		frames = append(frames, frame)
		r.buf = r.buf[frameLenSize+n:]
	}
	if len(r.buf) == 0 {
		// Let a large reassembly buffer be collected.
		r.buf = nil
	}
	return frames, nil
}

// encodeFrame prefixes a payload with its 3-byte big-endian length.
func encodeFrame(payload []byte) ([]byte, error) {
	if len(payload) > maxFrameSize {
		return nil, fmt.Errorf("encode frame: %d bytes exceeds the maximum", len(payload))
	}
	out := make([]byte, frameLenSize+len(payload))
	out[0] = byte(len(payload) >> 16)
	out[1] = byte(len(payload) >> 8)
	out[2] = byte(len(payload))
	copy(out[frameLenSize:], payload)
	return out, nil
}
