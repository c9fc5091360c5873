package pool

import (
	"errors"
	"fmt"
)

// Role is what a server is in its replication setup, as pgmux last learned it.
type Role int32

const (
	RoleUnknown Role = iota // never reached, or not asked yet
	RolePrimary             // accepts writes (in_hot_standby off, pg_is_in_recovery() false)
	RoleStandby             // in recovery: a hot standby
)

func (r Role) String() string {
	switch r {
	case RoleUnknown:
		return "unknown"
	case RolePrimary:
		return "primary"
	case RoleStandby:
		return "standby"
	}
	return fmt.Sprintf("Role(%d)", int32(r))
}

// SessionAttrs is target_session_attrs: which servers a pool's new connections may use.
type SessionAttrs int

const (
	AttrsAny SessionAttrs = iota
	AttrsReadWrite
	AttrsReadOnly
	AttrsPrimary
	AttrsStandby
	AttrsPreferStandby
)

var attrsNames = [...]string{
	AttrsAny: "any", AttrsReadWrite: "read-write", AttrsReadOnly: "read-only",
	AttrsPrimary: "primary", AttrsStandby: "standby", AttrsPreferStandby: "prefer-standby",
}

func (a SessionAttrs) String() string {
	if a >= 0 && int(a) < len(attrsNames) {
		return attrsNames[a]
	}
	return fmt.Sprintf("SessionAttrs(%d)", int(a))
}

// ParseSessionAttrs parses libpq's spelling; "" is any.
func ParseSessionAttrs(s string) (SessionAttrs, error) {
	if s == "" {
		return AttrsAny, nil
	}
	for i, n := range attrsNames {
		if n == s {
			return SessionAttrs(i), nil
		}
	}
	return AttrsAny, fmt.Errorf("unknown target_session_attrs %q", s)
}

// wants reports whether a server in role r fits a, and whether that is certain (a
// read-write or read-only decision also needs default_transaction_read_only, which only
// a login tells).
func (a SessionAttrs) wants(r Role) (fits, sure bool) {
	switch a {
	case AttrsAny, AttrsPreferStandby:
		return true, true
	case AttrsPrimary:
		return r == RolePrimary, r != RoleUnknown
	case AttrsReadWrite:
		return r == RolePrimary, r == RoleStandby
	case AttrsStandby:
		return r == RoleStandby, r != RoleUnknown
	case AttrsReadOnly:
		return r == RoleStandby, r == RoleStandby
	}
	return false, false
}

// ErrWrongRole is returned (wrapped) for a server that logged in fine but does not fit the
// pool's target_session_attrs.
var ErrWrongRole = errors.New("server does not match target_session_attrs")

// accept checks a freshly logged-in server's reported parameters against a, as libpq
// does: in_hot_standby for primary and standby, with default_transaction_read_only for
// read-write and read-only. role is what the parameters say the server is.
func (a SessionAttrs) accept(p Params) (role Role, err error) {
	hot, ok := p.Get("in_hot_standby")
	switch {
	case !ok:
		role = RoleUnknown
	case hot == "on":
		role = RoleStandby
	default:
		role = RolePrimary
	}
	ro, _ := p.Get("default_transaction_read_only")
	readOnly := role == RoleStandby || ro == "on"
	var fits bool
	switch a {
	case AttrsAny, AttrsPreferStandby:
		return role, nil
	case AttrsPrimary:
		fits = role == RolePrimary
	case AttrsStandby:
		fits = role == RoleStandby
	case AttrsReadWrite:
		fits = role == RolePrimary && !readOnly
	case AttrsReadOnly:
		fits = readOnly
	}
	if !fits && role == RoleUnknown {
		return role, fmt.Errorf("%w %s: the server did not report in_hot_standby (PostgreSQL 14 or later does)", ErrWrongRole, a)
	}
	if !fits {
		what := role.String()
		if ro == "on" && role == RolePrimary {
			what = "read-only primary"
		}
		return role, fmt.Errorf("%w %s: it is a %s", ErrWrongRole, a, what)
	}
	return role, nil
}

// Balance is load_balance_hosts: how the hosts that fit take turns for new connections.
type Balance int

const (
	BalanceRoundRobin Balance = iota // each new connection starts at the next host
	BalanceDisable                   // stay with the last host that worked until it fails
)

// ParseBalance parses load_balance_hosts; "" is round-robin.
func ParseBalance(s string) (Balance, error) {
	switch s {
	case "", "round-robin":
		return BalanceRoundRobin, nil
	case "disable":
		return BalanceDisable, nil
	}
	return BalanceRoundRobin, fmt.Errorf("unknown load_balance_hosts %q", s)
}
