package sandbox

// Edge routing. After login WhatsApp tells a client which front ("edge")
// server it reached with <ib><edge_routing><routing_info>…</routing_info>
// </edge_routing></ib>; a client that keeps the hint sends it back in front of
// its next connection header, as "ED", 0, 1, a 3-byte big-endian length and
// the hint, followed by the usual "WA" header, so the load balancer can send
// it to the same edge. The hint is a marshalled RoutingInfo
// (whatsmeow proto/waRoutingInfo, WAWebProtobufsRoutingInfo).
//
// whatsmeow itself neither keeps nor sends the hint: its handleIB
// (connectionevents.go) has no edge_routing case and socket.FrameSocket only
// ever sends socket.WAConnHeader. The wire format here is the one Baileys uses
// against WhatsApp: src/Utils/noise-handler.ts encodeFrame writes the prefix,
// and src/Socket/socket.ts stores routing_info from "CB:ib,,edge_routing".
// The prefix is not part of the noise prologue: Baileys authenticates only the
// WA header, which is why conn.handshake keeps using waHeader alone.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waRoutingInfo"
	"go.mau.fi/whatsmeow/types"
)

// edgeMagic starts an edge routing prefix: "ED" and version 0, 1 (noise-handler.ts encodeFrame).
var edgeMagic = []byte{'E', 'D', 0, 1}

// maxRoutingInfo bounds the hint a client may send; WhatsApp's are a few bytes.
const maxRoutingInfo = 4096

var errRoutingInfoTooLong = errors.New("edge routing info longer than 4096 bytes")

// edgePrefix reads the optional edge routing prefix in front of the WA header.
type edgePrefix struct {
	done bool
	info []byte // the routing info the client presented, nil when it sent none
}

// strip consumes the prefix at the start of buf, if there is one, and returns
// what follows it. ok is false while buf is too short to tell; anything that
// is not a prefix is left for the WA header check.
func (e *edgePrefix) strip(buf []byte) (rest []byte, ok bool, err error) {
	if e.done {
		return buf, true, nil
	}
	n := min(len(buf), len(edgeMagic))
	if !bytes.Equal(buf[:n], edgeMagic[:n]) {
		e.done = true
		return buf, true, nil
	}
	head := len(edgeMagic) + frameLenSize
	if len(buf) < head {
		return buf, false, nil
	}
	size := int(buf[4])<<16 | int(buf[5])<<8 | int(buf[6])
	if size > maxRoutingInfo {
		return nil, false, errRoutingInfoTooLong
	}
	if len(buf) < head+size {
		return buf, false, nil
	}
	e.info = append([]byte{}, buf[head:head+size]...)
	e.done = true
	return buf[head+size:], true, nil
}

// sandboxRoutingInfo is the hint this server hands out: one edge, so one region and cluster.
var sandboxRoutingInfo = mustMarshal(&waRoutingInfo.RoutingInfo{
	RegionID:  []int32{1},
	ClusterID: []int32{1},
	TaskID:    proto.Int32(1),
})

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return b
}

// sendEdgeRouting records the hint a logged-in client came with and, unless
// it already holds this server's, hands it out as WhatsApp does after <success>.
func (s *Server) sendEdgeRouting(c *conn) {
	if presented := c.reader.edge.info; presented != nil {
		s.emit(Event{Kind: EventEdgeRouted, ConnID: c.id, JID: c.jidString(), Detail: describeRoutingInfo(presented)})
		if bytes.Equal(presented, sandboxRoutingInfo) {
			return
		}
	}
	c.sendLogged(waBinary.Node{Tag: "ib", Attrs: waBinary.Attrs{"from": types.ServerJID}, Content: []waBinary.Node{{
		Tag:     "edge_routing",
		Content: []waBinary.Node{{Tag: "routing_info", Content: sandboxRoutingInfo}},
	}}})
	s.emit(Event{Kind: EventEdgeRoutingSent, ConnID: c.id, JID: c.jidString(), Detail: base64.StdEncoding.EncodeToString(sandboxRoutingInfo)})
}

// describeRoutingInfo renders a presented hint for the event history.
func describeRoutingInfo(raw []byte) string {
	var ri waRoutingInfo.RoutingInfo
	if err := proto.Unmarshal(raw, &ri); err != nil {
		return "unparseable " + base64.StdEncoding.EncodeToString(raw)
	}
	detail := fmt.Sprintf("region=%v cluster=%v task=%d", ri.GetRegionID(), ri.GetClusterID(), ri.GetTaskID())
	if bytes.Equal(raw, sandboxRoutingInfo) {
		return detail + " (this server's)"
	}
	return detail + " (stale)"
}
