package pool

import (
	"time"

	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAttrsAccept(t *testing.T) {
	primary := Params{{Name: "in_hot_standby", Value: "off"}, {Name: "default_transaction_read_only", Value: "off"}}
	roPrimary := Params{{Name: "in_hot_standby", Value: "off"}, {Name: "default_transaction_read_only", Value: "on"}}
	standby := Params{{Name: "in_hot_standby", Value: "on"}, {Name: "default_transaction_read_only", Value: "off"}}
	old := Params{{Name: "server_version", Value: "13.4"}}
	tests := []struct {
		attrs  SessionAttrs
		params Params
		role   Role
		ok     bool
	}{
		{AttrsAny, primary, RolePrimary, true},
		{AttrsAny, standby, RoleStandby, true},
		{AttrsAny, old, RoleUnknown, true},
		{AttrsReadWrite, primary, RolePrimary, true},
		{AttrsReadWrite, roPrimary, RolePrimary, false},
		{AttrsReadWrite, standby, RoleStandby, false},
		{AttrsReadWrite, old, RoleUnknown, false},
		{AttrsPrimary, primary, RolePrimary, true},
		{AttrsPrimary, roPrimary, RolePrimary, true},
		{AttrsPrimary, standby, RoleStandby, false},
		{AttrsReadOnly, primary, RolePrimary, false},
		{AttrsReadOnly, roPrimary, RolePrimary, true},
		{AttrsReadOnly, standby, RoleStandby, true},
		{AttrsStandby, standby, RoleStandby, true},
		{AttrsStandby, roPrimary, RolePrimary, false},
		{AttrsStandby, old, RoleUnknown, false},
		{AttrsPreferStandby, primary, RolePrimary, true},
		{AttrsPreferStandby, standby, RoleStandby, true},
	}
	for _, tt := range tests {
		t.Run(tt.attrs.String()+"/"+tt.role.String(), func(t *testing.T) {
			role, err := tt.attrs.accept(tt.params)
			require.Equal(t, tt.role, role)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrWrongRole)
			}
		})
	}
}

func TestParseSessionAttrs(t *testing.T) {
	for i, n := range attrsNames {
		a, err := ParseSessionAttrs(n)
		require.NoError(t, err)
		require.Equal(t, SessionAttrs(i), a)
	}
	a, err := ParseSessionAttrs("")
	require.NoError(t, err)
	require.Equal(t, AttrsAny, a)
	_, err = ParseSessionAttrs("master")
	require.Error(t, err)
	b, err := ParseBalance("disable")
	require.NoError(t, err)
	require.Equal(t, BalanceDisable, b)
}

// testCluster returns a cluster of n hosts h0..h(n-1) with the given roles; down marks
// unreachable ones.
func testCluster(roles []Role, down ...int) *Cluster {
	var eps []Endpoint
	for i := range roles {
		eps = append(eps, Endpoint{Host: "h" + string(rune('0'+i)), Port: 5432})
	}
	cl := NewCluster(ClusterOptions{Endpoints: eps})
	for i, r := range roles {
		cl.hosts[i].role = r
	}
	for _, i := range down {
		cl.hosts[i].down = true
	}
	return cl
}

func names(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Host)
	}
	return out
}

func TestCandidates(t *testing.T) {
	P, S, U := RolePrimary, RoleStandby, RoleUnknown
	tests := []struct {
		name  string
		roles []Role
		down  []int
		attrs SessionAttrs
		want  []string
	}{
		{"read-write: the primary first, standbys last", []Role{S, S, P}, nil, AttrsReadWrite, []string{"h2", "h0", "h1"}},
		{"read-write: unknown before known standbys", []Role{S, U, P}, nil, AttrsReadWrite, []string{"h2", "h1", "h0"}},
		{"read-write: a down primary after unknown hosts", []Role{P, U, S}, []int{0}, AttrsReadWrite, []string{"h1", "h0", "h2"}},
		{"primary", []Role{S, P}, nil, AttrsPrimary, []string{"h1", "h0"}},
		{"standby: standbys first", []Role{P, S, S}, nil, AttrsStandby, []string{"h1", "h2", "h0"}},
		{"read-only: standbys, then the primary (it may be read-only)", []Role{P, S}, nil, AttrsReadOnly, []string{"h1", "h0"}},
		{"prefer-standby: standbys, unknown, primary, down", []Role{P, U, S, S}, []int{3}, AttrsPreferStandby, []string{"h2", "h1", "h0", "h3"}},
		{"prefer-standby without standbys", []Role{P, P}, nil, AttrsPreferStandby, []string{"h0", "h1"}},
		{"any: reachable first", []Role{P, S, S}, []int{0}, AttrsAny, []string{"h1", "h2", "h0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := testCluster(tt.roles, tt.down...)
			require.Equal(t, tt.want, names(cl.candidates(tt.attrs, BalanceDisable)))
		})
	}
}

func TestCandidatesBalance(t *testing.T) {
	cl := testCluster([]Role{RoleStandby, RoleStandby, RoleStandby})
	var firsts []string
	for range 4 {
		firsts = append(firsts, cl.candidates(AttrsAny, BalanceRoundRobin)[0].Host)
	}
	require.Equal(t, []string{"h0", "h1", "h2", "h0"}, firsts, "round-robin starts at the next host each time")

	cl.worked(cl.hosts[1])
	for range 3 {
		require.Equal(t, []string{"h1", "h2", "h0"}, names(cl.candidates(AttrsAny, BalanceDisable)),
			"disable stays with the host that last worked")
	}
	cl.hosts[1].down = true
	require.Equal(t, []string{"h2", "h0", "h1"}, names(cl.candidates(AttrsAny, BalanceDisable)),
		"until it fails")
}

func TestHostNotes(t *testing.T) {
	cl := testCluster([]Role{RoleUnknown, RoleUnknown})
	ch := cl.Changed()
	require.False(t, cl.HasPrimary())
	cl.hosts[0].noteRole(RolePrimary)
	<-ch // a new role is a change
	require.True(t, cl.HasPrimary())
	require.NoError(t, cl.hosts[1].noteCheck([]string{"t", "0/3000060", "250"}, time.Now()))
	require.NoError(t, cl.hosts[0].noteCheck([]string{"f", "0/3000160", "0"}, time.Now()))
	st := cl.States()
	require.Equal(t, RolePrimary, st[0].Role)
	require.Equal(t, int64(0), st[0].LagMs)
	require.Equal(t, RoleStandby, st[1].Role)
	require.Equal(t, int64(250), st[1].LagMs)
	require.Equal(t, int64(0x100), st[1].LagBytes)

	ch = cl.Changed()
	cl.hosts[0].noteDown(errors.New("connection refused"))
	<-ch
	require.False(t, cl.HasPrimary(), "a primary that stopped answering is not one to route to")
	st = cl.States()
	require.True(t, st[0].Down)
	require.Equal(t, int64(-1), st[1].LagBytes, "no reachable primary to measure against")

	ch = cl.Changed()
	c := &Conn{host: cl.hosts[1]}
	c.NoteParameter("in_hot_standby", "off") // promoted
	<-ch
	require.True(t, cl.HasPrimary())
	require.Equal(t, RolePrimary, cl.States()[1].Role)
}

func TestParseLSN(t *testing.T) {
	v, err := ParseLSN("16/B374D848")
	require.NoError(t, err)
	require.Equal(t, uint64(0x16)<<32|0xB374D848, v)
	_, err = ParseLSN("16B374D848")
	require.Error(t, err)
	_, err = ParseLSN("x/1")
	require.Error(t, err)
}

func TestDataRow(t *testing.T) {
	b := []byte{0, 3, 0, 0, 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, '4', '2'}
	row, err := dataRow(b)
	require.NoError(t, err)
	require.Equal(t, []string{"t", "", "42"}, row)
	_, err = dataRow(b[:8])
	require.Error(t, err)
}
