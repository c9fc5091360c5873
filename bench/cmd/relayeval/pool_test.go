package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPoolLoops(t *testing.T) {
	t.Run("own loop first, FIFO waiters", func(t *testing.T) {
		p := NewPool[int, string](1, 2, false)
		p.Add(0, 1)
		p.Add(0, 2)
		s, from, ok := p.Lease(0, "a")
		require.True(t, ok)
		require.Equal(t, 0, from)
		_, _, ok = p.Lease(0, "b")
		require.True(t, ok)
		_, _, ok = p.Lease(0, "c")
		require.False(t, ok)
		_, _, ok = p.Lease(0, "d")
		require.False(t, ok)
		w, to, ok := p.Release(0, s)
		require.True(t, ok)
		require.Equal(t, "c", w)
		require.Equal(t, 0, to)
		require.True(t, p.Cancel(0, "d"))
		require.False(t, p.Cancel(0, "d"))
		_, _, ok = p.Release(0, s)
		require.False(t, ok) // idle now
		require.Equal(t, []int{2}, p.Held())
	})
	t.Run("steal an idle server of another loop", func(t *testing.T) {
		p := NewPool[int, string](2, 2, true)
		p.Add(0, 1)
		p.Add(1, 2)
		_, _, ok := p.Lease(0, "a")
		require.True(t, ok)
		s, from, ok := p.Lease(0, "b")
		require.True(t, ok)
		require.Equal(t, 2, s)
		require.Equal(t, 1, from)
		require.Equal(t, []int{2, 0}, p.Held())
	})
	t.Run("no stealing without migrate", func(t *testing.T) {
		p := NewPool[int, string](2, 2, false)
		p.Add(0, 1)
		p.Add(1, 2)
		_, _, ok := p.Lease(0, "a")
		require.True(t, ok)
		_, _, ok = p.Lease(0, "b")
		require.False(t, ok)
	})
	t.Run("a loop over its share gives to another loop's waiter", func(t *testing.T) {
		p := NewPool[int, string](2, 2, true)
		p.Add(0, 1)
		p.Add(0, 2) // both homed on loop 0: over its share of 1
		_, _, ok := p.Lease(0, "a")
		require.True(t, ok)
		_, _, ok = p.Lease(0, "b")
		require.True(t, ok)
		_, _, ok = p.Lease(0, "c") // waits on 0
		require.False(t, ok)
		_, _, ok = p.Lease(1, "x") // waits on 1
		require.False(t, ok)
		w, to, ok := p.Release(0, 1)
		require.True(t, ok)
		require.Equal(t, "x", w)
		require.Equal(t, 1, to)
		require.Equal(t, []int{1, 1}, p.Held())
		w, to, ok = p.Release(0, 2) // at its share now: its own waiter
		require.True(t, ok)
		require.Equal(t, "c", w)
		require.Equal(t, 0, to)
	})
	t.Run("a loop without waiters gives to another's", func(t *testing.T) {
		p := NewPool[int, string](2, 2, true)
		p.Add(0, 1)
		p.Add(1, 2)
		_, _, ok := p.Lease(1, "x")
		require.True(t, ok)
		_, _, ok = p.Lease(1, "y") // steals 1 from loop 0
		require.True(t, ok)
		_, _, ok = p.Lease(1, "z")
		require.False(t, ok)
		require.Equal(t, []int{0, 2}, p.Held())
	})
	t.Run("fifo compacts", func(t *testing.T) {
		var f fifo[int]
		for i := 0; i < 10000; i++ {
			f.push(i)
			f.push(i)
			require.Equal(t, i/2, f.pop())
		}
		require.Equal(t, 10000, f.len())
		require.Less(t, cap(f.q), 40000)
	})
}
