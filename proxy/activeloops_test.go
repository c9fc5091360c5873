package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestActiveLoops: new clients go to the first n loops while SetActiveLoops(n) is in
// force, and to every loop again after.
func TestActiveLoops(t *testing.T) {
	srv := &Server{loops: make([]*parker, 4)}
	for i := range srv.loops {
		srv.loops[i] = &parker{}
	}
	homes := func(n int) map[*parker]int {
		m := map[*parker]int{}
		for range n {
			s := &Session{srv: srv, id: srv.newID()}
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

	ids := map[uint64]bool{}
	srv.SetActiveLoops(2)
	for range 100 {
		id := srv.newID()
		require.False(t, ids[id], "ids stay unique")
		ids[id] = true
	}
}
