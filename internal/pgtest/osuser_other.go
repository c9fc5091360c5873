//go:build !unix

package pgtest

import (
	"context"
	"runtime"
	"syscall"
)

type osUser struct{}

func serverOSUser(context.Context) (*osUser, error) {
	return nil, &unavailableError{reason: "starting PostgreSQL is not supported on " + runtime.GOOS + "; set " + EnvURL}
}

func (u *osUser) procAttr() *syscall.SysProcAttr { return nil }

func (u *osUser) chown(string) error { return nil }
