package devsandbox

// DialRemoteWith is dialRemote with the noise root's setter, for tests
// (setting whatsmeow's process-global one would leak between them).
var DialRemoteWith = dialRemote
