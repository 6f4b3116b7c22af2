// Package sandbox is a local WhatsApp server simulator: the real, unmodified
// whatsmeow client connects to it over TLS, websocket and the noise XX
// handshake exactly as it does to WhatsApp, pairs with a simulated phone,
// exchanges end-to-end encrypted messages with simulated contacts, and can be
// hit with the faults WhatsApp produces (drops, stream errors, logouts, bans,
// outages, lost pings and acks) so the bot can be tested without a phone.
//
// In-process use (tests):
//
//	s, _ := sandbox.New(sandbox.Options{})
//	_ = s.Start(ctx)
//	defer s.Close()
//	cli := whatsmeow.NewClient(device, nil)
//	_ = s.Trust().Apply(cli) // sets whatsmeow.WACertPubKey (process-global) and the HTTP clients
//	// connect, take the QR from GetQRChannel, then: s.ScanQR(ctx, code)
//
// Out-of-process use: run a Server, point the bot at its ControlURL
// (WA_SANDBOX=http://host:port) and let the bot call FetchTrust and Apply.
// The simulator and the JSON control API share one TCP address: a connection
// starting with a TLS handshake byte is WhatsApp traffic, anything else is
// the control API (see ControlHandler for the endpoints).
//
// Addressing is WhatsApp's since its move to LIDs (lid.go): contacts have a
// LID and write from it with their number as sender_pn, usync answers name
// them by it, and a contact addressed by number (Options.PhoneNumberContacts,
// AddPhoneNumberContact) can be moved to its LID mid-conversation
// (MigrateContact), after which messages addressed to its number are acked
// and delivered to nobody, as WhatsApp does. At login the client gets what
// whatsmeow and WhatsApp Web clients ask for (login.go: key digest, props,
// privacy settings and tokens, blocklist, app state with the push name, edge
// routing, and the end-of-backlog marker after offline delivery).
//
// Client versions are checked as WhatsApp checks them (version.go): a login
// or registration below the minimum gets failure 405, and WhatsApp Web's page
// at https://web.whatsapp.com/ names the current version, where whatsmeow's
// GetLatestVersion looks (SetClientVersions, /control/version).
//
// Tests synchronise with WaitFor/WaitEvent on the event history instead of sleeping.
package sandbox
