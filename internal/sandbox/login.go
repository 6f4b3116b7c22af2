package sandbox

// What WhatsApp does for a device once it has logged in, beyond keys, devices
// and pings (iq.go): the end-of-backlog marker after the messages that waited
// for it, and the account queries clients make at and after login (the key
// bundle digest, A/B and server props, blocklist, privacy settings, privacy
// tokens, app state in appstate.go). Each answer is shaped on the code that
// parses it, cited where it is built.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// deliverOffline hands a device what waited for it, then marks the end of that
// backlog with <ib><offline count=N/></ib>: whatsmeow's handleIB
// (connectionevents.go) turns it into events.OfflineSyncCompleted{Count}, and
// Baileys (src/Socket/socket.ts, "CB:ib,,offline") waits for it before it
// reports pending notifications as received.
func (s *Server) deliverOffline(c *conn, devID uint16) {
	since := s.LastSeq()
	s.flushPending(c, devID)
	s.shareAppStateKey(c, devID)
	// The count is of every stanza that waited: messages, notifications and receipts.
	n := s.countConnEvents(EventDelivered, c.id, since) + s.countConnEvents(EventReceiptToBot, c.id, since)
	c.sendLogged(waBinary.Node{Tag: "ib", Attrs: waBinary.Attrs{"from": types.ServerJID}, Content: []waBinary.Node{{
		Tag: "offline", Attrs: waBinary.Attrs{"count": strconv.Itoa(n)},
	}}})
	s.emit(Event{Kind: EventOfflineDelivered, ConnID: c.id, JID: c.jidString(), Detail: strconv.Itoa(n)})
}

// countConnEvents counts events of kind on connection id after sequence number since.
func (s *Server) countConnEvents(kind EventKind, id, since uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Seq > since && e.Kind == kind && e.ConnID == id {
			n++
		}
	}
	return n
}

// accountIQ answers the account queries of a logged-in client; ok is false for
// one the sandbox does not know, which handleIQ then refuses with unknownIQ.
func (s *Server) accountIQ(c *conn, n *waBinary.Node, xmlns, typ, first string) (resp waBinary.Node, ok bool) {
	switch {
	case xmlns == "encrypt" && typ == "get" && first == "digest":
		return s.keyDigest(c, n), true
	case xmlns == "abt" && typ == "get" && first == "props":
		return abPropsResult(n), true
	case xmlns == "w" && typ == "get" && first == "props":
		return serverPropsResult(n), true
	case xmlns == "blocklist" && typ == "get":
		return s.blocklistResult(n), true
	case xmlns == "blocklist" && typ == "set" && first == "item":
		return s.updateBlocklist(c, n), true
	case xmlns == "privacy" && typ == "get" && first == "privacy":
		return s.privacyResult(n), true
	case xmlns == "privacy" && typ == "set" && first == "privacy":
		return s.setPrivacy(c, n), true
	case xmlns == "privacy" && typ == "set" && first == "tokens":
		return s.issuePrivacyTokens(c, n), true
	case xmlns == "w:sync:app:state" && typ == "set" && first == "sync":
		return s.appStateSync(c, n), true
	}
	return waBinary.Node{}, false
}

// keyDigest answers <digest/>: the key bundle the server holds for the device
// and a SHA-1 over identity key, signed prekey, its signature and every listed
// one-time prekey, which the client recomputes from its own keys (WhatsApp
// Web's WAWebDigestKeyJob validateLocalKeyBundle; whatsapp-rust's
// validate_digest_key follows it). 404 means no record, and makes such a
// client upload its keys again. whatsmeow does not send this query.
func (s *Server) keyDigest(c *conn, n *waBinary.Node) waBinary.Node {
	s.mu.Lock()
	rec := s.deviceRecFor(c)
	var d deviceRec
	if rec != nil {
		d = *rec
		d.PreKeys = slices.Clone(rec.PreKeys)
	}
	s.mu.Unlock()
	if rec == nil || len(d.IdentityPub) != 32 || len(d.SignedPreKey.Pub) != 32 || len(d.SignedPreKey.Sig) != 64 {
		return iqError(n, 404, "item-not-found")
	}
	h := sha1.New()
	h.Write(d.IdentityPub)
	h.Write(d.SignedPreKey.Pub)
	h.Write(d.SignedPreKey.Sig)
	ids := make([]waBinary.Node, 0, len(d.PreKeys))
	for _, k := range d.PreKeys {
		h.Write(k.Pub)
		ids = append(ids, waBinary.Node{Tag: "id", Content: keyID3(k.ID)})
	}
	var reg [4]byte
	binary.BigEndian.PutUint32(reg[:], d.RegID)
	return iqResult(n, waBinary.Node{Tag: "digest", Content: []waBinary.Node{
		{Tag: "registration", Content: reg[:]},
		{Tag: "type", Content: []byte{5}},
		{Tag: "identity", Content: d.IdentityPub},
		{Tag: "skey", Content: []waBinary.Node{
			{Tag: "id", Content: keyID3(d.SignedPreKey.ID)},
			{Tag: "value", Content: d.SignedPreKey.Pub},
			{Tag: "signature", Content: d.SignedPreKey.Sig},
		}},
		{Tag: "list", Content: ids},
		{Tag: "hash", Content: h.Sum(nil)},
	}})
}

// keyID3 is a prekey ID on the wire: 3 bytes, big-endian (whatsmeow prekeys.go preKeyToNode).
func keyID3(id uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return b[1:]
}

// abProps are the A/B properties served: the trusted-contact token timing
// whatsmeow hard-codes as "Matches AB prop tctoken_duration" and
// "tctoken_num_buckets" (tctoken.go), under their config codes in WhatsApp
// Web's registry (WAWebABPropsConfigs, as listed by whatsapp-rust
// wacore/src/iq/abprops.rs).
var abProps = [][2]string{
	{"865", "604800"}, // tctoken_duration
	{"909", "4"},      // tctoken_num_buckets
	{"996", "604800"}, // tctoken_duration_sender
	{"997", "4"},      // tctoken_num_buckets_sender
}

var abPropsHash = propsHash(abProps)

func propsHash(props [][2]string) string {
	h := sha256.New()
	for _, p := range props {
		fmt.Fprintf(h, "%s=%s;", p[0], p[1])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// abPropsResult answers <iq xmlns=abt><props protocol=1 hash=…/>: the props as
// <prop config_code config_value/>, or none with delta_update when the client's
// hash is current (WASmaxInAbPropsConfigs as read by whatsapp-rust
// wacore/src/iq/props.rs; Baileys fetchAbt reads the same nodes).
func abPropsResult(n *waBinary.Node) waBinary.Node {
	req := n.GetChildByTag("props")
	attrs := waBinary.Attrs{"protocol": "1", "hash": abPropsHash, "refresh": "86400"}
	if id, ok := req.Attrs["refresh_id"]; ok {
		attrs["refresh_id"] = id
	}
	if h, _ := req.Attrs["hash"].(string); h == abPropsHash {
		attrs["delta_update"] = "true"
		return iqResult(n, waBinary.Node{Tag: "props", Attrs: attrs})
	}
	props := make([]waBinary.Node, len(abProps))
	for i, p := range abProps {
		props[i] = waBinary.Node{Tag: "prop", Attrs: waBinary.Attrs{"config_code": p[0], "config_value": p[1]}}
	}
	return iqResult(n, waBinary.Node{Tag: "props", Attrs: attrs, Content: props})
}

// serverPropsResult answers the older <iq xmlns=w><props protocol=2 hash=…/>
// that Baileys sends at login (fetchProps in src/Socket/chats.ts reads the
// hash and <prop name value/> children). The sandbox has no such props to
// set, so the answer is their (empty) set and its hash.
func serverPropsResult(n *waBinary.Node) waBinary.Node {
	return iqResult(n, waBinary.Node{Tag: "props", Attrs: waBinary.Attrs{"protocol": "2", "hash": propsHash(nil)}})
}

// defaultPrivacy is what a new account's privacy settings read, in the shape
// whatsapp-rust documents from WhatsApp (wacore/src/iq/privacy.rs); the
// category names are whatsmeow's types.PrivacySettingType.
var defaultPrivacy = map[string]string{
	"last": "all", "online": "all", "profile": "contacts", "status": "contacts", "groupadd": "contacts",
	"readreceipts": "all", "calladd": "all", "messages": "all", "defense": "off",
}

// privacyResult answers <iq xmlns=privacy type=get><privacy/>: one
// <category name value/> per setting (whatsmeow privacysettings.go
// TryFetchPrivacySettings and parsePrivacySettings).
func (s *Server) privacyResult(n *waBinary.Node) waBinary.Node {
	ext := s.extras()
	ext.mu.Lock()
	defer ext.mu.Unlock()
	return iqResult(n, waBinary.Node{Tag: "privacy", Content: categoryNodes(ext.privacy, nil)})
}

// categoryNodes renders settings, all of them when names is nil, in name order.
func categoryNodes(settings map[string]string, names []string) []waBinary.Node {
	if names == nil {
		for name := range settings {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]waBinary.Node, 0, len(names))
	for _, name := range names {
		out = append(out, waBinary.Node{Tag: "category", Attrs: waBinary.Attrs{"name": name, "value": settings[name]}})
	}
	return out
}

// setPrivacy applies <privacy><category name value/></privacy> (whatsmeow
// SetPrivacySetting), answers with the categories changed (WhatsApp Web's
// setPrivacyParser reads name and value back) and tells the account's other
// devices, as an account_sync notification that whatsmeow's
// handleAccountSyncNotification parses. Disallowed-contact lists are not kept.
func (s *Server) setPrivacy(c *conn, n *waBinary.Node) waBinary.Node {
	req := n.GetChildByTag("privacy")
	set := map[string]string{}
	for _, cat := range req.GetChildrenByTag("category") {
		name, _ := cat.Attrs["name"].(string)
		value, _ := cat.Attrs["value"].(string)
		if name == "" || value == "" {
			return iqError(n, 400, "bad-request")
		}
		set[name] = value
	}
	ext := s.extras()
	ext.mu.Lock()
	maps.Copy(ext.privacy, set)
	ext.saveLocked()
	ext.mu.Unlock()
	changed := categoryNodes(set, nil)
	s.notifyDevices(c, func() waBinary.Node {
		return accountSync(waBinary.Node{Tag: "privacy", Content: changed})
	})
	return iqResult(n, waBinary.Node{Tag: "privacy", Content: changed})
}

// blocklistResult answers <iq xmlns=blocklist type=get>: <list dhash> with an
// <item jid/> per blocked user (whatsmeow user.go GetBlocklist, parseBlocklist).
func (s *Server) blocklistResult(n *waBinary.Node) waBinary.Node {
	ext := s.extras()
	ext.mu.Lock()
	defer ext.mu.Unlock()
	return iqResult(n, blocklistNode(ext.blocked))
}

func blocklistNode(blocked []types.JID) waBinary.Node {
	items := make([]waBinary.Node, len(blocked))
	for i, jid := range blocked {
		items[i] = waBinary.Node{Tag: "item", Attrs: waBinary.Attrs{"jid": jid}}
	}
	return waBinary.Node{Tag: "list", Attrs: waBinary.Attrs{"dhash": blocklistHash(blocked)}, Content: items}
}

// blocklistHash stands for WhatsApp's opaque list hash: it changes with the list.
func blocklistHash(blocked []types.JID) string {
	h := sha256.New()
	for _, jid := range blocked {
		h.Write([]byte(jid.String() + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

// updateBlocklist applies <item jid action=block|unblock/> (whatsmeow
// UpdateBlocklist), answers with the new list and tells the account's other
// devices (account_sync <blocklist>, whatsmeow notification.go handleBlocklist).
// Blocking is only recorded: the sandbox still delivers a blocked user's messages.
func (s *Server) updateBlocklist(c *conn, n *waBinary.Node) waBinary.Node {
	var changes []waBinary.Node
	for _, item := range n.GetChildrenByTag("item") {
		jid, ok := item.Attrs["jid"].(types.JID)
		action, _ := item.Attrs["action"].(string)
		if !ok || (action != "block" && action != "unblock") {
			return iqError(n, 400, "bad-request")
		}
		changes = append(changes, waBinary.Node{Tag: "item", Attrs: waBinary.Attrs{"jid": jid.ToNonAD(), "action": action}})
	}
	ext := s.extras()
	ext.mu.Lock()
	prev := blocklistHash(ext.blocked)
	for _, ch := range changes {
		jid := ch.Attrs["jid"].(types.JID)
		ext.blocked = slices.DeleteFunc(ext.blocked, func(b types.JID) bool { return b == jid })
		if ch.Attrs["action"] == "block" {
			ext.blocked = append(ext.blocked, jid)
		}
	}
	slices.SortFunc(ext.blocked, func(a, b types.JID) int { return strings.Compare(a.String(), b.String()) })
	list := blocklistNode(ext.blocked)
	ext.saveLocked()
	ext.mu.Unlock()
	s.notifyDevices(c, func() waBinary.Node {
		return accountSync(waBinary.Node{Tag: "blocklist", Attrs: waBinary.Attrs{
			"action": "modify", "dhash": list.Attrs["dhash"], "prev_dhash": prev,
		}, Content: changes})
	})
	return iqResult(n, list)
}

// issuePrivacyTokens answers <tokens><token jid t type=trusted_contact/></tokens>
// (whatsmeow tctoken.go issuePrivacyToken, sent after the bot writes to a
// contact) with a token per recipient, as whatsapp-rust's
// IssuePrivacyTokensSpec reads it. The tokens are opaque: no sandbox contact
// checks them.
func (s *Server) issuePrivacyTokens(c *conn, n *waBinary.Node) waBinary.Node {
	issuer, _ := c.account()
	ext := s.extras()
	var out []waBinary.Node
	req := n.GetChildByTag("tokens")
	for _, tok := range req.GetChildrenByTag("token") {
		jid, ok := tok.Attrs["jid"].(types.JID)
		ts, _ := tok.Attrs["t"].(string)
		if typ, _ := tok.Attrs["type"].(string); !ok || ts == "" || typ != "trusted_contact" {
			return iqError(n, 400, "bad-request")
		}
		mac := hmac.New(sha256.New, ext.tokenKey)
		mac.Write([]byte(issuer.ToNonAD().String() + "|" + jid.ToNonAD().String() + "|" + ts))
		out = append(out, waBinary.Node{Tag: "token", Attrs: waBinary.Attrs{
			"jid": jid, "t": ts, "type": "trusted_contact",
		}, Content: mac.Sum(nil)})
		s.emit(Event{Kind: EventPrivacyTokenIssued, ConnID: c.id, JID: jid.String(), Detail: ts})
	}
	return iqResult(n, waBinary.Node{Tag: "tokens", Content: out})
}

// accountSync wraps a change for the account's devices (whatsmeow
// notification.go handleAccountSyncNotification).
func accountSync(child waBinary.Node) waBinary.Node {
	return waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
		"from": types.ServerJID, "type": "account_sync", "id": newMessageID(),
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{child}}
}

// notifyDevices sends a notification to every logged-in connection but except
// (nil for all), in the background so a stuck device cannot hold the caller.
func (s *Server) notifyDevices(except *conn, build func() waBinary.Node) {
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.connList() {
		if _, ok := c.account(); ok && c != except {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	for _, c := range targets {
		go c.sendLogged(build())
	}
}

// accountExtras is the account state the phone keeps beside its devices:
// privacy settings, blocklist and app state (appstate.go). It has its own
// lock so that app state work never holds s.mu. ext.mu guards every field
// but tokenKey, which never changes.
type accountExtras struct {
	mu       sync.Mutex
	log      *slog.Logger
	path     string // settings file, empty without a data directory
	privacy  map[string]string
	blocked  []types.JID
	tokenKey []byte
	sync     *syncd
}

// extras is the account's settings, blocklist and app state, loaded by New.
func (s *Server) extras() *accountExtras { return s.settings }

// settingsFile keeps accountExtras in the data directory, beside the state file.
const settingsFile = "account-settings.json"

type savedSettings struct {
	Privacy map[string]string   `json:"privacy"`
	Blocked []string            `json:"blocked,omitempty"`
	Patches map[string][][]byte `json:"patches,omitempty"` // marshalled SyncdPatch per collection, oldest first
}

// loadExtras restores the account settings of a data directory, or starts from defaults.
func (s *Server) loadExtras() *accountExtras {
	ext := &accountExtras{log: s.log, privacy: maps.Clone(defaultPrivacy), tokenKey: make([]byte, 32)}
	_, _ = rand.Read(ext.tokenKey)
	var saved savedSettings
	if s.opts.DataDir != "" {
		ext.path = filepath.Join(s.opts.DataDir, settingsFile)
		if err := readJSONFile(ext.path, &saved); err != nil {
			s.log.Error("load account settings", "err", err)
		}
	}
	for name, value := range saved.Privacy {
		ext.privacy[name] = value
	}
	for _, raw := range saved.Blocked {
		if jid, err := types.ParseJID(raw); err == nil {
			ext.blocked = append(ext.blocked, jid)
		}
	}
	ext.sync = newSyncd(s.ctx, s.log, *s.phone.dev.IdentityKey.Priv, saved)
	ext.mu.Lock()
	ext.saveLocked()
	ext.mu.Unlock()
	return ext
}

func readJSONFile(path string, v any) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// saveLocked writes the settings file when there is a data directory; ext.mu must be held.
func (ext *accountExtras) saveLocked() {
	if ext.path == "" {
		return
	}
	saved := savedSettings{Privacy: ext.privacy, Patches: ext.sync.saved()}
	for _, jid := range ext.blocked {
		saved.Blocked = append(saved.Blocked, jid.String())
	}
	raw, err := json.MarshalIndent(&saved, "", "  ")
	if err == nil {
		tmp := ext.path + ".tmp"
		if err = os.WriteFile(tmp, raw, 0o600); err == nil {
			err = os.Rename(tmp, ext.path)
		}
	}
	if err != nil {
		ext.log.Error("save account settings", "err", err)
	}
}
