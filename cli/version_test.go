package cli

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "e45239b610aaa84c0b958ed4a2bb0fc6ae7cb028"},
		{Key: "vcs.time", Value: "2026-12-02T07:08:20Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"sluice built from a clone", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: modulePath, Version: "v0.0.0-20261202070820-e45239b610aa+dirty"}, Settings: vcs},
			"sluice v0.0.0-20261202070820-e45239b610aa+dirty\nrevision e45239b610aaa84c0b958ed4a2bb0fc6ae7cb028 of 2026-12-02T07:08:20Z, with uncommitted changes\nbuilt with go1.26.8 for linux/arm64\n"},
		{"go install sluice@v1.2.0", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: modulePath, Version: "v1.2.0"}},
			"sluice v1.2.0\nbuilt with go1.26.0 for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
		{"a user's program", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/jobs", Version: "v0.3.0"}, Deps: []*debug.Module{{Path: "github.com/twmb/franz-go", Version: "v1.22.2"}, {Path: modulePath, Version: "v1.2.0"}}},
			"sluice v1.2.0, in example.com/jobs v0.3.0\nbuilt with go1.26.1 for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
		{"a user's program with a replaced sluice", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/jobs", Version: "(devel)"}, Deps: []*debug.Module{{Path: modulePath, Version: "v1.2.0", Replace: &debug.Module{Path: "../sluice"}}}},
			"sluice v1.2.0 => ../sluice, in example.com/jobs (devel)\nbuilt with go1.26.1 for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
		{"no build information", nil,
			"sluice (unknown version: the binary has no build information)\nbuilt with " + runtime.Version() + " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
	} {
		if got := versionText(c.bi); got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "sluice ") || !strings.Contains(stdout.String(), "built with "+runtime.Version()+" for ") {
		t.Errorf("sluice version printed:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"version", "extra"}, &stdout, &stderr); code != ExitUsage {
		t.Errorf("sluice version extra: exit %d, want %d", code, ExitUsage)
	}
}
