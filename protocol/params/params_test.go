package params

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParams(t *testing.T) {
	var ps Params
	require.True(t, ps.Set("a", "1"))
	require.True(t, ps.Set("b", "2"))
	require.False(t, ps.Set("a", "1"), "same value: no change")
	require.True(t, ps.Set("a", "3"))
	require.Equal(t, Params{{"a", "3"}, {"b", "2"}}, ps, "order kept, value replaced in place")
	v, ok := ps.Get("b")
	require.True(t, ok)
	require.Equal(t, "2", v)
	_, ok = ps.Get("c")
	require.False(t, ok)

	c := ps.Clone()
	c.Set("b", "9")
	c.Delete("a")
	require.Equal(t, Params{{"b", "9"}}, c)
	require.Equal(t, Params{{"a", "3"}, {"b", "2"}}, ps, "a clone shares nothing with its original")
	ps.Delete("zz") // absent: nothing happens
	require.Len(t, ps, 2)
}
