// Package troubleshoot names the sections of docs/TROUBLESHOOTING.md that
// log lines, `blacksky doctor` and the pages point to, so an operator who
// reads "help=..." next to a symptom lands on what it means and what to do.
//
// The contract: every Section here is a heading of docs/TROUBLESHOOTING.md
// (its GitHub anchor), checked by this package's tests; renaming a heading
// without its Section fails them. Sections are never removed, only added:
// links in old logs and old binaries keep working.
package troubleshoot

// Doc is where the guide is read: the repository's copy on GitHub, which a
// Heroku operator can open (the dyno's disk is not at hand).
const Doc = "https://github.com/blacksky-bot/blacksky/blob/main/docs/TROUBLESHOOTING.md"

// Section is the anchor of one heading of the guide.
type Section string

// The sections, one per symptom an operator meets.
const (
	Offline            Section = "offline-no-such-host-or-connection-refused"
	NotPaired          Section = "not-paired-the-qr-code-keeps-coming-back"
	MissingConnection  Section = "could-not-send-notification-missing-connection-or-user"
	ConnectionReplaced Section = "connection-replaced"
	LoggedOut          Section = "logged-out-after-a-deploy-or-a-restart"
	ReachOut           Section = "error-463-the-reach-out-lock"
	WaitingForMessage  Section = "waiting-for-this-message-and-bad-mac"
	Outdated           Section = "client-outdated-405"
	Banned             Section = "temporarily-banned"
	Memory             Section = "heroku-r14-memory-quota-exceeded"
	DataDir            Section = "data-directory-not-writable"
	Database           Section = "database-unreachable-or-not-initialised"
	Configuration      Section = "bad-configuration-exit-2"
	Lease              Section = "another-process-holds-the-account"
	Webhook            Section = "webhooks-failing-or-dead"
	Stuck              Section = "connected-but-nothing-moves"
)

// All lists every section, for the test that checks the guide has them.
func All() []Section {
	return []Section{Offline, NotPaired, MissingConnection, ConnectionReplaced, LoggedOut, ReachOut,
		WaitingForMessage, Outdated, Banned, Memory, DataDir, Database, Configuration, Lease, Webhook, Stuck}
}

// URL is the section's address in the guide.
func (s Section) URL() string { return Doc + "#" + string(s) }

// String is the URL, so a Section logs as where to read.
func (s Section) String() string { return s.URL() }
