package main

import (
	"runtime/debug"
	"strings"
)

// version may be set at build time with -ldflags "-X main.version=v1.2.3" (a release
// tag); otherwise the module version Go stamps into the binary is used.
var version = ""

// buildVersion describes this binary (see describeBuild).
func buildVersion() (ver, detail string) {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(info, version)
}

// describeBuild returns the version (override, else the main module's version: a tag, a
// pseudo-version or "(devel)") and the build detail: the VCS revision (with "+dirty" for
// uncommitted changes), its commit time and the Go release, from runtime/debug's
// BuildInfo.
func describeBuild(info *debug.BuildInfo, override string) (ver, detail string) {
	ver = override
	if info == nil {
		if ver == "" {
			ver = "(unknown)"
		}
		return ver, ""
	}
	if ver == "" {
		ver = info.Main.Version
	}
	var rev, when string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		if dirty {
			rev += "+dirty"
		}
		parts = append(parts, "revision "+rev)
	} else {
		parts = append(parts, "no VCS revision stamped")
	}
	if when != "" {
		parts = append(parts, when)
	}
	parts = append(parts, info.GoVersion)
	return ver, strings.Join(parts, ", ")
}

// versionLine is what --version prints.
func versionLine() string {
	ver, detail := buildVersion()
	if detail == "" {
		return "pgmux " + ver
	}
	return "pgmux " + ver + " (" + detail + ")"
}
