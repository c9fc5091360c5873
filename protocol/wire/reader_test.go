package wire

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Current starts at the message Next returned, before and after it is consumed, and is
// nil once a chunked Skip has refilled the buffer past its start.
func TestReaderCurrent(t *testing.T) {
	two := Query(Query(nil, "select 1"), "select 22")
	rd := NewReader(bytes.NewReader(two))
	_, n, err := rd.Next()
	require.NoError(t, err)
	m, err := rd.Peek(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "before consuming: the message's start")
	_, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "after: still its start")
	_, n, err = rd.Next()
	require.NoError(t, err)
	m, err = rd.Peek(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "the next message's start once Next returned it")
	require.Equal(t, &m[0], &rd.Window()[0])

	// A message larger than what one read brings: Skip refills, its start is gone.
	big := Query(nil, string(bytes.Repeat([]byte("x"), 3*BufSize)))
	rd = NewReader(&chunked{b: big, n: 1024})
	_, n, err = rd.Next()
	require.NoError(t, err)
	require.NoError(t, rd.Skip(n))
	require.Nil(t, rd.Current())
}

// More adds what the source has next to what is buffered, from the message Next returned
// on, without consuming anything.
func TestReaderMore(t *testing.T) {
	two := Query(Query(nil, "select 1"), "select 22")
	rd := NewReader(&chunked{b: two, n: 7})
	_, n, err := rd.Next()
	require.NoError(t, err)
	for len(rd.Window()) < len(two) {
		require.NoError(t, rd.More())
	}
	require.Equal(t, two, rd.Window())
	_, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, Query(nil, "select 22"), rd.Window())
	require.Error(t, rd.More(), "the source's end")
}
