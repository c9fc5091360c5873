//go:build !unix

package procs

import "time"

// processCPU: not read on this system; the governor does not run.
func processCPU() (time.Duration, bool) { return 0, false }
