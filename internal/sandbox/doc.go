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
// Contacts answer the bot's messages as phones do (receipts.go,
// contactsettings.go, reinstall.go): a delivery receipt once decrypted, a
// read receipt when they read (Contact.Read, or by themselves after
// ContactSettings.ReadAfter or Options.ReadAfter; none with read receipts
// off), several read at once in one receipt. The server keeps every
// receipt for each companion device of the account until that device acks
// it, so an offline device gets it at login and an unacked one gets it
// again on its next connection. A contact can be offline (its messages are
// acked, kept and delivered in order when it is back) and can reinstall
// WhatsApp (a new identity; what was kept for the old install is dropped;
// the devices get the identity change notification). The control API has
// the same: /control/contacts/{number}/settings, /read and /reinstall.
//
// Tests synchronise with WaitFor/WaitEvent on the event history instead of sleeping.
package sandbox
