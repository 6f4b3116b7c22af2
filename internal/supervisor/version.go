package supervisor

// The client version. WhatsApp refuses a client version it no longer accepts
// with failure 405 (events.ClientOutdated), and whatsmeow's built-in version
// ages faster than blacksky is released. So on a 405 the supervisor asks
// WhatsApp Web which version it serves now (whatsmeow's GetLatestVersion,
// through Options.ProbeClient, which reaches whatever whatsmeow dials: the
// sandbox when one is configured), switches to it (store.SetWAVersion) and
// reconnects at once. Only a strictly newer version is tried, so a refusal
// of the version WhatsApp Web itself serves ends it: Outdated, with one owner
// alert, and no more attempts until a restart (an upgrade). A failed fetch
// ends the same way, and so does a refusal of a pinned version
// (Options.PinnedVersion), which is never replaced.
//
// The version is whatsmeow's process-wide setting: it is changed only
// between connections, when no handshake reads it, and a fetched version
// lasts until the process ends (a restart starts from the built-in or pinned
// one again, and moves on at its first 405).

import (
	"context"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"
	wastore "go.mau.fi/whatsmeow/store"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// versionFetchTimeout bounds the fetch of WhatsApp Web's page.
const versionFetchTimeout = 20 * time.Second

// usePinnedVersion makes whatsmeow present the pinned version from the first connection on.
func (s *Supervisor) usePinnedVersion() {
	pin := s.opts.PinnedVersion
	if pin.IsZero() {
		return
	}
	s.log.Info("client version pinned", "version", pin.String(), "built_in", wastore.GetWAVersion().String())
	if wastore.GetWAVersion() != pin {
		wastore.SetWAVersion(pin)
	}
}

// onOutdated answers a 405. It reports true when a newer version is now in
// use and the next connection should go out at once; otherwise the state is
// Outdated, the owner has been alerted, and only a restart helps.
func (s *Supervisor) onOutdated(ctx context.Context) bool {
	refused := wastore.GetWAVersion()
	if !s.opts.PinnedVersion.IsZero() {
		s.outdated(ctx, fmt.Sprintf("WhatsApp refused the pinned client version %s", refused),
			fmt.Sprintf("WhatsApp rejects client version %s, pinned by WA_VERSION: pin a newer one or unset it (blacksky then moves to WhatsApp Web's current version), and restart.", refused))
		return false
	}
	s.setState(Connecting, fmt.Sprintf("WhatsApp refused client version %s; fetching WhatsApp Web's current version", refused), nil)
	latest, err := s.latestVersion(ctx)
	switch {
	case err != nil:
		s.outdated(ctx, fmt.Sprintf("WhatsApp refused client version %s, and WhatsApp Web's current version could not be fetched: %v", refused, err),
			fmt.Sprintf("WhatsApp rejects this client as outdated (version %s) and WhatsApp Web's current version could not be fetched (%v): upgrade blacksky or set WA_VERSION, and restart it.", refused, err))
		return false
	case !refused.LessThan(latest):
		reason := fmt.Sprintf("WhatsApp refused client version %s, WhatsApp Web's current one", refused)
		if latest != refused {
			reason = fmt.Sprintf("WhatsApp refused client version %s; WhatsApp Web's current version %s is not newer", refused, latest)
		}
		s.outdated(ctx, reason,
			fmt.Sprintf("WhatsApp rejects this client as outdated, even at WhatsApp Web's current version %s: upgrade blacksky and restart it.", refused))
		return false
	}
	s.log.Warn("WhatsApp refused the client version; switching to WhatsApp Web's current version", "refused", refused.String(), "version", latest.String())
	wastore.SetWAVersion(latest)
	return true
}

// latestVersion fetches the version WhatsApp Web serves now.
func (s *Supervisor) latestVersion(ctx context.Context) (wastore.WAVersionContainer, error) {
	ctx, cancel := context.WithTimeout(ctx, versionFetchTimeout)
	defer cancel()
	v, err := whatsmeow.GetLatestVersion(ctx, s.opts.ProbeClient)
	if err != nil {
		return wastore.WAVersionContainer{}, fmt.Errorf("fetch WhatsApp Web's version: %w", err)
	}
	return *v, nil
}

// outdated alerts the owner and enters Outdated for good. The alert comes
// first: whoever sees the state (a /status reader, a test) finds the alert
// beside it, as with every other state that needs a human (CI saw the
// state without the alert when it came second).
func (s *Supervisor) outdated(ctx context.Context, reason, alert string) {
	s.log.Error("client version refused; not reconnecting until restarted", "reason", reason, "help", troubleshoot.Outdated)
	s.alert(ctx, alert)
	s.setState(Outdated, reason, nil)
}
