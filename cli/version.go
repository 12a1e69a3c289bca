package cli

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// modulePath is Sluice's module, whose version `sluice version` reports.
const modulePath = "github.com/sluice-streams/sluice"

// version runs `sluice version`.
func (e *env) version(args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: sluice version\n\nPrints the version of Sluice, the commit it was built from when known, and the Go it was built with.\n")
	}
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprint(e.stdout, versionText(bi))
	return ExitOK
}

// versionText describes the build: Sluice's module version (and the program's, when
// Sluice is a library of another program), the VCS revision, its time and whether
// the tree had uncommitted changes, when the build recorded them, and the Go
// version and platform. bi is nil when the binary has no build information.
func versionText(bi *debug.BuildInfo) string {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if bi == nil {
		return fmt.Sprintf("sluice (unknown version: the binary has no build information)\nbuilt with %s for %s\n", runtime.Version(), platform)
	}
	var b strings.Builder
	if bi.Main.Path == modulePath {
		fmt.Fprintf(&b, "sluice %s\n", orUnknown(bi.Main.Version))
	} else {
		v := "(not a dependency of this program)"
		for _, d := range bi.Deps {
			if d.Path != modulePath {
				continue
			}
			v = orUnknown(d.Version)
			if d.Replace != nil {
				v += " => " + strings.TrimSpace(d.Replace.Path+" "+d.Replace.Version)
			}
		}
		fmt.Fprintf(&b, "sluice %s, in %s %s\n", v, orUnknown(bi.Main.Path), orUnknown(bi.Main.Version))
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		b.WriteString("revision " + rev)
		if t := set["vcs.time"]; t != "" {
			b.WriteString(" of " + t)
		}
		if set["vcs.modified"] == "true" {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	}
	if os, arch := set["GOOS"], set["GOARCH"]; os != "" && arch != "" {
		platform = os + "/" + arch
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, "built with %s for %s\n", goVersion, platform)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
