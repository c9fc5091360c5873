package muxtest

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// Main is a TestMain for packages that run many clients at once: it raises the soft
// RLIMIT_NOFILE to the hard limit (pgmux holds descriptors on both sides in this process,
// and child programs such as pgbench inherit the limit), runs the tests with pgtest.Run,
// then calls each of after and exits with the tests' code.
func Main(m *testing.M, after ...func()) {
	RaiseNoFileLimit()
	code := pgtest.Run(m)
	for _, f := range after {
		f()
	}
	os.Exit(code)
}

// RaiseNoFileLimit raises the soft RLIMIT_NOFILE to the hard one, reporting a failure on
// stderr.
func RaiseNoFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "%s: raise RLIMIT_NOFILE: %v\n", os.Args[0], err)
		}
	}
}
