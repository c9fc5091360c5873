package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/startup"
)

// TestReplicationOf reads the replication startup parameter as PostgreSQL does:
// "database" for logical, a boolean (prefixes, any case) for physical or none, and
// PostgreSQL's 22023 for anything else.
func TestReplicationOf(t *testing.T) {
	for v, want := range map[string]sessionKind{
		"database": kindLogical, "true": kindPhysical, "ON": kindPhysical, "yes": kindPhysical, "1": kindPhysical,
		"t": kindPhysical, "y": kindPhysical, "false": kindPooled, "off": kindPooled, "0": kindPooled, "no": kindPooled,
	} {
		got, err := replicationOf(&startup.Packet{Params: []startup.Param{{Key: "replication", Value: v}}})
		require.NoError(t, err, v)
		require.Equal(t, want, got, v)
	}
	got, err := replicationOf(&startup.Packet{})
	require.NoError(t, err)
	require.Equal(t, kindPooled, got)
	for _, v := range []string{"Database", "o", "2", "maybe", ""} {
		_, err := replicationOf(&startup.Packet{Params: []startup.Param{{Key: "replication", Value: v}}})
		var pe *pgerr.Error
		require.ErrorAs(t, err, &pe, v)
		require.Equal(t, pgerr.InvalidParameterValue, pe.Code, v)
	}
	require.Equal(t, "logical", kindLogical.replicationName())
	require.Equal(t, "physical", kindPhysical.replicationName())
	require.Equal(t, "none", kindSession.replicationName())
}

// TestReplicationParams: the server's StartupMessage for a replication client carries
// the pool's parameters with the client's over them and the replication value.
func TestReplicationParams(t *testing.T) {
	base := []startup.Param{{Key: "DateStyle", Value: "ISO"}, {Key: "options", Value: "-c extra_float_digits=3"}}
	got := replicationParams(nil, kindLogical, base)
	require.Equal(t, "ISO", must(got.Get("datestyle")))
	require.Equal(t, "-c extra_float_digits=3", must(got.Get("options")))
	require.Equal(t, "database", must(got.Get("replication")))
	got = replicationParams(got[:1:1], kindPhysical, nil)
	require.Equal(t, "true", must(got.Get("replication")))
}

func must(v string, ok bool) string {
	if !ok {
		return "<unset>"
	}
	return v
}
