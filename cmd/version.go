package cmd

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, commit and date are set at build time (make build, the
// Dockerfile): -ldflags "-X github.com/pms-dev/pms/cmd.version=v1.2.3
// -X github.com/pms-dev/pms/cmd.commit=abc123 -X github.com/pms-dev/pms/cmd.date=2026-12-02T08:00:00Z".
// Without them, the commit and its time come from the VCS stamp of go build.
var version, commit, date = "dev", "", ""

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit and build date of pms",
		Example: "  pms version\n  docker run --rm pms:1.0.0 version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			c, d, goVersion := buildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "pms %s\ncommit  %s\nbuilt   %s\ngo      %s\n", version, c, d, goVersion)
		},
	}
}

// buildInfo returns the commit and build date (from the linker flags, else
// the VCS stamp: the commit and its time, "+dirty" when the tree was
// modified) and the Go version.
func buildInfo() (rev, built, goVersion string) {
	rev, built, goVersion = commit, date, "unknown"
	bi, ok := debug.ReadBuildInfo()
	if ok {
		goVersion = bi.GoVersion
	}
	dirty := ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && rev == "":
			rev = s.Value
		case s.Key == "vcs.time" && built == "":
			built = s.Value + " (commit time)"
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		rev = "unknown"
	} else if commit == "" {
		rev += dirty
	}
	if built == "" {
		built = "unknown"
	}
	return rev, built, goVersion
}
