package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func buildInfo(mainVersion string, settings ...string) *debug.BuildInfo {
	info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/blacksky-bot/blacksky", Version: mainVersion}}
	for i := 0; i+1 < len(settings); i += 2 {
		info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return info
}

func TestVersionDerivesFromEveryBuildPath(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"-ldflags -X main.version wins", "v2.0.0", buildInfo("v1.0.0", "vcs.revision", rev), "v2.0.0"},
		{"go install module@v1.4.0", "", buildInfo("v1.4.0"), "v1.4.0"},
		{"go build in a modified checkout (Go 1.24+)", "", buildInfo("v0.0.0-20261201100000-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"), "v0.0.0-20261201100000-0123456789ab+dirty"},
		{"VCS data without a module version", "", buildInfo("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "dev-0123456789ab-dirty"},
		{"VCS data, clean tree", "", buildInfo("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "dev-0123456789ab"},
		{"-buildvcs=false or no .git (Docker context)", "", buildInfo("(devel)"), "dev"},
		{"no build information", "", nil, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describeVersion(tt.stamped, tt.info)
			if got != tt.want {
				t.Errorf("describeVersion = %q, want %q", got, tt.want)
			}
			if strings.ContainsAny(got, " \t") {
				t.Errorf("version %q has a space; it goes into a User-Agent", got)
			}
		})
	}
	b := describeBuild(buildInfo("(devel)", "vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true"))
	if b != "commit 0123456789ab, 2026-12-01T10:00:00Z, modified" {
		t.Errorf("describeBuild = %q", b)
	}
}
