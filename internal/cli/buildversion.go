package cli

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is what the binary calls itself (`blacksky version`, the log,
// /status, the owner's start message, the webhook User-Agent): Version,
// which cmd/blacksky's build may set with -ldflags "-X main.version=v1.2.3"
// (the Dockerfile's VERSION build argument, Heroku's GO_LINKER_SYMBOL);
// otherwise derived from the build information Go records in every binary.
func (p Program) version() string {
	info, _ := debug.ReadBuildInfo() // nil when the binary has none
	return describeVersion(p.Version, info)
}

// describeVersion derives the version string, one token without spaces (it
// goes into a User-Agent): the -ldflags value when one was given; else the
// main module's version, which is the release for `go install
// module@v1.2.3` and, since Go 1.24, the tag or pseudo-version of the
// checkout `go build` ran in (with +dirty for uncommitted changes); else,
// with VCS data but no module version, dev-<commit>[-dirty]; else "dev"
// (built with -buildvcs=false, or from a tree without .git, like a Docker
// build context).
func describeVersion(stamped string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	vcs := vcsSettings(info)
	if rev := vcs["vcs.revision"]; rev != "" {
		v := "dev-" + shortRevision(rev)
		if vcs["vcs.modified"] == "true" {
			v += "-dirty"
		}
		return v
	}
	return "dev"
}

// describeBuild says which commit the binary was built from, when Go
// recorded it: "commit 0123456789ab, 2026-12-01T10:00:00Z, modified".
func describeBuild(info *debug.BuildInfo) string {
	if info == nil {
		return ""
	}
	vcs := vcsSettings(info)
	if vcs["vcs.revision"] == "" {
		return ""
	}
	parts := []string{"commit " + shortRevision(vcs["vcs.revision"])}
	if t := vcs["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	if vcs["vcs.modified"] == "true" {
		parts = append(parts, "modified")
	}
	return strings.Join(parts, ", ")
}

func vcsSettings(info *debug.BuildInfo) map[string]string {
	out := map[string]string{}
	for _, s := range info.Settings {
		if strings.HasPrefix(s.Key, "vcs.") {
			out[s.Key] = s.Value
		}
	}
	return out
}

// shortRevision is a commit hash's first 12 characters, as in Go's
// pseudo-versions.
func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// versionLine is what `blacksky version` prints.
func (p Program) versionLine() string {
	info, _ := debug.ReadBuildInfo()
	details := dependencyVersions()
	if b := describeBuild(info); b != "" {
		details = b + "; " + details
	}
	return fmt.Sprintf("blacksky %s (%s)", p.version(), details)
}
