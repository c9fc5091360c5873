//go:build unix

package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// osUser is the account PostgreSQL runs as when the test process is root.
// A nil *osUser means "the current user".
type osUser struct {
	name     string
	uid, gid uint32
}

// serverOSUser returns nil when not root; as root it returns the postgres
// account, creating it first if needed (PostgreSQL refuses to run as root).
func serverOSUser(ctx context.Context) (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		if !errors.As(err, new(user.UnknownUserError)) {
			return nil, fmt.Errorf("look up OS user %s: %w", name, err)
		}
		addErr := addSystemUser(ctx, name)
		// Another test binary may have created it meanwhile; look again.
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("running as root, and could not create OS user %s to run PostgreSQL: %w", name, errors.Join(addErr, err))
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: gid %q: %w", name, u.Gid, err)
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

func addSystemUser(ctx context.Context, name string) error {
	args := []string{"--system", "--no-create-home", "--shell", "/usr/sbin/nologin"}
	if _, err := user.LookupGroup(name); err == nil {
		args = append(args, "--gid", name)
	} else {
		args = append(args, "--user-group")
	}
	out, err := exec.CommandContext(ctx, "useradd", append(args, name)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd %s: %w: %s", name, err, out)
	}
	return nil
}

// procAttr runs a child as u (when set) in its own process group, so a Ctrl-C
// aimed at the test does not reach PostgreSQL or the watchdog half-way.
func (u *osUser) procAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if u != nil {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	return attr
}

// chown gives path to u; a no-op for the current user.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	return os.Lchown(path, int(u.uid), int(u.gid))
}
