package sandbox

// App state ("syncd"): the settings and chat state a WhatsApp account keeps on
// the server as encrypted, MAC'd patches that its devices upload and fetch;
// the push name is one of them (setting_pushName in critical_block). The
// server only stores patches, numbers them and tells devices when a
// collection moved on; the devices hold the key, which the phone gives a new
// companion in an AppStateSyncKeyShare message after linking.
//
// That is how whatsmeow learns its own push name: neither <success> nor the
// pairing carries it. The key share makes it fetch every collection
// (message.go handleAppStateSyncKeyShare), and applying the push name
// mutation sets Store.PushName (appstate.go dispatchAppState,
// IndexSettingPushName). Here the sandbox is both: as the phone it shares the
// key and writes patches with whatsmeow's own encoder (appstate.Processor
// EncodePatch, what whatsmeow's SendAppState uses), and as the server it
// checks, numbers and serves them.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"go.mau.fi/whatsmeow/appstate"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waServerSync"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// DefaultPushName is the bot account's push name until SetPushName changes it.
const DefaultPushName = "Sandbox Bot"

// syncd is the account's app state: the patches of each collection and the
// phone's side of the key. Its fields are guarded by accountExtras.mu.
type syncd struct {
	proc     *appstate.Processor // over mem, to encode the phone's patches and check every patch
	mem      *memSyncStore
	keyID    []byte
	key      store.AppStateSyncKey
	rawID    uint32
	patches  map[appstate.WAPatchName][][]byte // marshalled SyncdPatch; index i is version i+1
	pushName string                            // as the last setting_pushName mutation left it
	shared   map[uint16]bool                   // devices the phone has sent the key to since the server started
}

// newSyncd derives the phone's key from its identity, so a data directory
// keeps it valid across restarts, replays the saved patches and, for a new
// account, writes the push name.
func newSyncd(ctx context.Context, log *slog.Logger, phonePriv [32]byte, saved savedSettings) *syncd {
	mac := hmac.New(sha256.New, phonePriv[:])
	mac.Write([]byte("sandbox app state sync key"))
	keyData := mac.Sum(nil)
	sum := sha256.Sum256(keyData)
	sy := &syncd{
		mem: newMemSyncStore(), keyID: sum[:6], rawID: binary.BigEndian.Uint32(sum[6:10]),
		patches: make(map[appstate.WAPatchName][][]byte), shared: make(map[uint16]bool),
	}
	fingerprint, _ := proto.Marshal(sy.fingerprint())
	sy.key = store.AppStateSyncKey{Data: keyData, Fingerprint: fingerprint, Timestamp: time.Now().UnixMilli()}
	_ = sy.mem.PutAppStateSyncKey(ctx, sy.keyID, sy.key)
	sy.proc = appstate.NewProcessor(&store.Device{AppState: sy.mem, AppStateKeys: sy.mem}, waLog.Noop)
	for name, list := range saved.Patches {
		if err := sy.replay(ctx, appstate.WAPatchName(name), list); err != nil {
			log.Error("replay saved app state: dropped the rest of the collection", "collection", name, "err", err)
		}
	}
	if len(sy.patches[appstate.WAPatchCriticalBlock]) == 0 {
		if _, err := sy.setPushName(ctx, DefaultPushName); err != nil {
			log.Error("write push name patch", "err", err)
		}
	}
	return sy
}

func (sy *syncd) fingerprint() *waE2E.AppStateSyncKeyFingerprint {
	return &waE2E.AppStateSyncKeyFingerprint{RawID: proto.Uint32(sy.rawID), CurrentIndex: proto.Uint32(0), DeviceIndexes: []uint32{0}}
}

func (sy *syncd) replay(ctx context.Context, name appstate.WAPatchName, list [][]byte) error {
	for i, raw := range list {
		var p waServerSync.SyncdPatch
		if err := proto.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("patch v%d: %w", i+1, err)
		}
		if _, err := sy.apply(ctx, name, &p); err != nil {
			return err
		}
	}
	return nil
}

// apply checks a patch against the collection's state as whatsmeow will
// (appstate.Processor DecodePatches: snapshot and patch MACs, every
// mutation's MACs) and stores it as the next version, which it returns.
func (sy *syncd) apply(ctx context.Context, name appstate.WAPatchName, p *waServerSync.SyncdPatch) (uint64, error) {
	version, hash, err := sy.mem.GetAppStateVersion(ctx, string(name))
	if err != nil {
		return 0, err
	}
	p.Version = &waServerSync.SyncdVersion{Version: proto.Uint64(version + 1)}
	raw, err := proto.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("marshal %s patch: %w", name, err)
	}
	list := &appstate.PatchList{Name: name, Patches: []*waServerSync.SyncdPatch{p}}
	mutations, _, err := sy.proc.DecodePatches(ctx, list, appstate.HashState{Version: version, Hash: hash}, true)
	if err != nil {
		return 0, fmt.Errorf("check %s patch v%d: %w", name, version+1, err)
	}
	for _, m := range mutations {
		if m.Operation == waServerSync.SyncdMutation_SET && len(m.Index) > 0 && m.Index[0] == appstate.IndexSettingPushName {
			sy.pushName = m.Action.GetPushNameSetting().GetName()
		}
	}
	sy.patches[name] = append(sy.patches[name], raw)
	return version + 1, nil
}

// setPushName writes the phone's setting_pushName patch (appstate.BuildSettingPushName).
func (sy *syncd) setPushName(ctx context.Context, name string) (uint64, error) {
	info := appstate.BuildSettingPushName(name)
	version, hash, err := sy.mem.GetAppStateVersion(ctx, string(info.Type))
	if err != nil {
		return 0, err
	}
	raw, err := sy.proc.EncodePatch(ctx, sy.keyID, appstate.HashState{Version: version, Hash: hash}, info)
	if err != nil {
		return 0, fmt.Errorf("encode push name patch: %w", err)
	}
	var p waServerSync.SyncdPatch
	if err := proto.Unmarshal(raw, &p); err != nil {
		return 0, fmt.Errorf("decode push name patch: %w", err)
	}
	return sy.apply(ctx, info.Type, &p)
}

func (sy *syncd) saved() map[string][][]byte {
	out := make(map[string][][]byte, len(sy.patches))
	for name, list := range sy.patches {
		out[string(name)] = list
	}
	return out
}

// keyShare is the phone's AppStateSyncKeyShare (whatsmeow message.go handleAppStateSyncKeyShare).
func (sy *syncd) keyShare() *waE2E.Message {
	return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_APP_STATE_SYNC_KEY_SHARE.Enum(),
		AppStateSyncKeyShare: &waE2E.AppStateSyncKeyShare{Keys: []*waE2E.AppStateSyncKey{{
			KeyID: &waE2E.AppStateSyncKeyId{KeyID: sy.keyID},
			KeyData: &waE2E.AppStateSyncKeyData{
				KeyData: sy.key.Data, Fingerprint: sy.fingerprint(), Timestamp: proto.Int64(sy.key.Timestamp),
			},
		}}},
	}}
}

// SetPushName makes the phone change the account's push name: a new
// critical_block patch, announced to the logged-in devices with a server_sync
// notification, which makes whatsmeow fetch it (notification.go
// handleAppStateNotification) and set Store.PushName.
func (s *Server) SetPushName(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("set push name: empty name")
	}
	ext := s.extras()
	ext.mu.Lock()
	version, err := ext.sync.setPushName(ctx, name)
	if err == nil {
		ext.saveLocked()
	}
	ext.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set push name: %w", err)
	}
	s.announcePatch(nil, appstate.WAPatchCriticalBlock, version)
	return nil
}

// PushName is the account's current push name, as the phone or a device last set it.
func (s *Server) PushName() string {
	ext := s.extras()
	ext.mu.Lock()
	defer ext.mu.Unlock()
	return ext.sync.pushName
}

// announcePatch records a new version and tells the devices but except.
func (s *Server) announcePatch(except *conn, name appstate.WAPatchName, version uint64) {
	s.emit(Event{Kind: EventAppStatePatch, Detail: fmt.Sprintf("%s v%d", name, version)})
	s.notifyDevices(except, func() waBinary.Node {
		return waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
			"from": types.ServerJID, "type": "server_sync", "id": newMessageID(),
			"t": strconv.FormatInt(time.Now().Unix(), 10),
		}, Content: []waBinary.Node{{Tag: "collection", Attrs: waBinary.Attrs{
			"name": string(name), "version": strconv.FormatUint(version, 10),
		}}}}
	})
}

// shareAppStateKey makes the phone send its app state key to a device once,
// as the phone does after linking, as a peer protocol message from device 0
// (attributes as whatsmeow's own preparePeerMessageNode, send.go). It goes
// through the pending queue like any message, so a device that drops before
// its receipt gets it again at its next login.
func (s *Server) shareAppStateKey(c *conn, devID uint16) {
	ext := s.extras()
	ext.mu.Lock()
	if ext.sync.shared[devID] {
		ext.mu.Unlock()
		return
	}
	ext.sync.shared[devID] = true
	msg := ext.sync.keyShare()
	ext.mu.Unlock()
	id, node, err := s.phoneMessage(c.ctx, devID, msg)
	if err != nil {
		s.log.Error("share app state key", "device", devID, "err", err)
		ext.mu.Lock()
		delete(ext.sync.shared, devID)
		ext.mu.Unlock()
		return
	}
	s.emit(Event{Kind: EventAppStateKeyShared, ConnID: c.id, JID: c.jidString(), Detail: id})
	s.deliver(devID, pendingMsg{id: id, node: node})
}

// phoneMessage encrypts a peer message from the account's phone to one of its devices.
func (s *Server) phoneMessage(ctx context.Context, devID uint16, msg *waE2E.Message) (string, waBinary.Node, error) {
	plain, err := proto.Marshal(msg)
	if err != nil {
		return "", waBinary.Node{}, fmt.Errorf("marshal: %w", err)
	}
	phone := s.AccountJID()
	to := types.JID{User: phone.User, Server: phone.Server, Device: devID}
	s.phone.cryptoMu.Lock()
	encType, ciphertext, err := s.phone.encrypt(ctx, to, pad(plain))
	s.phone.cryptoMu.Unlock()
	if err != nil {
		return "", waBinary.Node{}, fmt.Errorf("encrypt for %s: %w", to, err)
	}
	id := newMessageID()
	return id, waBinary.Node{Tag: "message", Attrs: waBinary.Attrs{
		"id": id, "from": phone, "type": "text", "category": "peer",
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{{Tag: "enc", Attrs: waBinary.Attrs{"v": "2", "type": encType}, Content: ciphertext}}}, nil
}

// appStateSync answers <iq xmlns=w:sync:app:state><sync><collection …/></sync>,
// one collection at a time: a fetch gets the patches after the client's
// version, an upload (a <patch> child) is checked and stored
// (whatsmeow appstate.go fetchAppStatePatches and sendAppState).
func (s *Server) appStateSync(c *conn, n *waBinary.Node) waBinary.Node {
	var out []waBinary.Node
	req := n.GetChildByTag("sync")
	for _, col := range req.GetChildrenByTag("collection") {
		out = append(out, s.syncCollection(c, col))
	}
	return iqResult(n, waBinary.Node{Tag: "sync", Content: out})
}

func (s *Server) syncCollection(c *conn, col waBinary.Node) waBinary.Node {
	name := appstate.WAPatchName(col.AttrGetter().OptionalString("name"))
	from, _ := strconv.ParseUint(col.AttrGetter().OptionalString("version"), 10, 64)
	if !slices.Contains(appstate.AllPatchNames[:], name) {
		return collectionError(name, 404, "item-not-found")
	}
	if upload, ok := col.GetOptionalChildByTag("patch"); ok {
		return s.uploadPatch(c, name, from, upload)
	}
	ext := s.extras()
	ext.mu.Lock()
	defer ext.mu.Unlock()
	return collectionNode(name, ext.sync.patches[name], from)
}

// collectionNode lists the patches after version from (ParsePatchList in whatsmeow appstate/decode.go).
func collectionNode(name appstate.WAPatchName, all [][]byte, from uint64) waBinary.Node {
	n := waBinary.Node{Tag: "collection", Attrs: waBinary.Attrs{
		"name": string(name), "version": strconv.Itoa(len(all)),
	}}
	if from >= uint64(len(all)) {
		return n
	}
	var patches []waBinary.Node
	for _, raw := range all[from:] {
		patches = append(patches, waBinary.Node{Tag: "patch", Content: raw})
	}
	n.Content = []waBinary.Node{{Tag: "patches", Content: patches}}
	return n
}

func collectionError(name appstate.WAPatchName, code int, text string) waBinary.Node {
	return waBinary.Node{Tag: "collection", Attrs: waBinary.Attrs{"name": string(name), "type": "error"},
		Content: []waBinary.Node{{Tag: "error", Attrs: waBinary.Attrs{"code": strconv.Itoa(code), "text": text}}}}
}

// uploadPatch stores a device's patch made on version from. On an older
// version it answers 409 with the patches the device lacks, which whatsmeow
// applies before retrying (sendAppState).
func (s *Server) uploadPatch(c *conn, name appstate.WAPatchName, from uint64, upload waBinary.Node) waBinary.Node {
	raw, _ := upload.Content.([]byte)
	var p waServerSync.SyncdPatch
	if err := proto.Unmarshal(raw, &p); err != nil {
		return collectionError(name, 400, "bad-request")
	}
	ext := s.extras()
	ext.mu.Lock()
	if current := uint64(len(ext.sync.patches[name])); from != current {
		conflict := collectionError(name, 409, "conflict")
		missing := collectionNode(name, ext.sync.patches[name], from)
		conflict.Content = append(conflict.Content.([]waBinary.Node), missing.GetChildren()...)
		ext.mu.Unlock()
		return conflict
	}
	version, err := ext.sync.apply(c.ctx, name, &p)
	if err == nil {
		ext.saveLocked()
	}
	ext.mu.Unlock()
	if err != nil {
		s.log.Warn("rejected app state patch", "conn", c.id, "collection", name, "err", err)
		return collectionError(name, 400, "bad-request")
	}
	s.announcePatch(c, name, version)
	return waBinary.Node{Tag: "collection", Attrs: waBinary.Attrs{"name": string(name), "version": strconv.FormatUint(version, 10)}}
}

// memSyncStore holds the server's copy of app state hashes, value MACs and
// the key in memory, as whatsmeow's stores do in its database; the patches
// themselves are the durable record (savedSettings) and rebuild it.
type memSyncStore struct {
	mu       sync.Mutex
	versions map[string]memVersion
	macs     map[string]map[string][]byte // collection -> index MAC -> value MAC
	keys     map[string]store.AppStateSyncKey
	latest   []byte
}

type memVersion struct {
	version uint64
	hash    [128]byte
}

var (
	_ store.AppStateStore        = (*memSyncStore)(nil)
	_ store.AppStateSyncKeyStore = (*memSyncStore)(nil)
)

func newMemSyncStore() *memSyncStore {
	return &memSyncStore{
		versions: make(map[string]memVersion),
		macs:     make(map[string]map[string][]byte),
		keys:     make(map[string]store.AppStateSyncKey),
	}
}

func (m *memSyncStore) PutAppStateVersion(_ context.Context, name string, version uint64, hash [128]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.versions[name] = memVersion{version, hash}
	return nil
}

func (m *memSyncStore) GetAppStateVersion(_ context.Context, name string) (uint64, [128]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.versions[name]
	return v.version, v.hash, nil
}

func (m *memSyncStore) DeleteAppStateVersion(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.versions, name)
	delete(m.macs, name)
	return nil
}

func (m *memSyncStore) PutAppStateMutationMACs(_ context.Context, name string, _ uint64, mutations []store.AppStateMutationMAC) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.macs[name] == nil {
		m.macs[name] = make(map[string][]byte)
	}
	for _, mm := range mutations {
		m.macs[name][string(mm.IndexMAC)] = mm.ValueMAC
	}
	return nil
}

func (m *memSyncStore) DeleteAppStateMutationMACs(_ context.Context, name string, indexMACs [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, im := range indexMACs {
		delete(m.macs[name], string(im))
	}
	return nil
}

func (m *memSyncStore) GetAppStateMutationMAC(_ context.Context, name string, indexMAC []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.macs[name][string(indexMAC)], nil
}

func (m *memSyncStore) PutAppStateSyncKey(_ context.Context, id []byte, key store.AppStateSyncKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[string(id)] = key
	m.latest = id
	return nil
}

func (m *memSyncStore) GetAppStateSyncKey(_ context.Context, id []byte) (*store.AppStateSyncKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key, ok := m.keys[string(id)]; ok {
		return &key, nil
	}
	return nil, nil
}

func (m *memSyncStore) GetLatestAppStateSyncKeyID(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, nil
}

func (m *memSyncStore) GetAllAppStateSyncKeys(context.Context) ([]*store.AppStateSyncKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*store.AppStateSyncKey, 0, len(m.keys))
	for _, key := range m.keys {
		out = append(out, &key)
	}
	return out, nil
}
