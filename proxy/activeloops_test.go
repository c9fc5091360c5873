package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestActiveLoops: clients belong on the first n loops while SetActiveLoops(n) is in
// force, spread evenly over them, and on every loop again after; home follows the
// index a session holds.
func TestActiveLoops(t *testing.T) {
	srv := &Server{loops: make([]*parker, 4)}
	for i := range srv.loops {
		srv.loops[i] = &parker{}
	}
	homes := func(n int) map[*parker]int {
		m := map[*parker]int{}
		for range n {
			s := &Session{srv: srv, id: srv.newID()}
			s.loopIdx.Store(srv.loopFor(s.id))
			m[s.home()]++
		}
		return m
	}
	require.Len(t, homes(8), 4, "all four loops by default")

	srv.SetActiveLoops(1)
	got := homes(8)
	require.Equal(t, map[*parker]int{srv.loops[0]: 8}, got)

	srv.SetActiveLoops(3)
	got = homes(9)
	require.Equal(t, map[*parker]int{srv.loops[0]: 3, srv.loops[1]: 3, srv.loops[2]: 3}, got)

	srv.SetActiveLoops(4)
	require.Len(t, homes(8), 4)
	srv.SetActiveLoops(0)
	require.Len(t, homes(8), 4)
	srv.SetActiveLoops(9) // more than there are: all
	require.Len(t, homes(8), 4)

	// A client's place follows the active loops: where one placed while a single loop
	// was active belongs once two are.
	s := &Session{srv: srv, id: 7}
	srv.SetActiveLoops(1)
	require.Zero(t, srv.loopFor(s.id))
	srv.SetActiveLoops(2)
	require.EqualValues(t, 1, srv.loopFor(s.id))
	s.loopIdx.Store(9) // out of range (never set so): the first loop, not a panic
	require.Same(t, srv.loops[0], s.home())
}
