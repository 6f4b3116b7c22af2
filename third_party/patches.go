// Package thirdparty names the patches applied to the copy of whatsmeow in
// third_party/whatsmeow, so that a binary can say it runs a patched client
// (blacksky version). Why each patch exists, and its upstream status, is in
// third_party/README.md; .ci/whatsmeow-drift checks that the copy is exactly
// the pinned module plus these patches.
package thirdparty

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed whatsmeow-*.patch
var patches embed.FS

// WhatsmeowPatches lists the patch names (without "whatsmeow-" and ".patch"),
// sorted.
func WhatsmeowPatches() []string {
	names, _ := fs.Glob(patches, "whatsmeow-*.patch")
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(n, "whatsmeow-"), ".patch"))
	}
	return out
}
