package proxy

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// fieldsSession is a session the loop serves (it has loopWork), reading src.
func fieldsSession(src []byte) *Session {
	s := &Session{rd: wire.NewReader(bytes.NewReader(src)), sessionWork: newWork()}
	s.lw = &loopWork{}
	return s
}

// The memo's split is link.ParseFields' for every body, well-formed or not, at its
// first look and at the later ones; the later ones do not look at the bytes again.
func TestFieldsOfSplitsAsParseFields(t *testing.T) {
	bodies := [][]byte{
		[]byte("\x00SELECT 1\x00\x00\x00"),                    // unnamed Parse
		[]byte("s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"), // named Parse, one type
		[]byte("\x00\x00\x00\x00\x00\x00\x00\x00"),            // Bind of the unnamed portal and statement
		[]byte("p\x00stmt\x00\x00\x01\x00\x01"),               // named portal and statement
		[]byte("s1\x00SELECT 1"),                              // no end to the second string
		[]byte("s1"),                                          // nor to the first
		[]byte("\x00"),                                        // one string only
		{},
	}
	for i, body := range bodies {
		s := fieldsSession(nil)
		seq := uint64(i + 1)
		a, b, rest, ok := link.ParseFields(body)
		for look := range 3 {
			f := s.fieldsOf(body, seq)
			require.Equal(t, ok, f.OK(), "body %q look %d", body, look)
			if ok {
				require.Equal(t, [][]byte{a, b, rest}, [][]byte{f.First(body), f.Second(body), f.Rest(body)},
					"body %q look %d", body, look)
			}
		}
		if !ok {
			continue
		}
		// Another view of the message's bytes (the rewrite's, after they moved): split
		// where the first look found the ends, without a search. Bytes without a NUL
		// show which it was.
		moved := bytes.Repeat([]byte{'x'}, len(body))
		f := s.fieldsOf(moved, seq)
		require.True(t, f.OK())
		require.Equal(t, []int{len(a), len(b), len(rest)}, []int{len(f.First(moved)), len(f.Second(moved)), len(f.Rest(moved))},
			"body %q", body)
		// The next message, of the same length, is split anew.
		require.False(t, s.fieldsOf(moved, seq+1).OK(), "a message without NULs is split anew at the next count")
	}
}

// The loop looks at a Parse before Next counts it (loopable), dispatch after it and the
// rewrite after the bytes of a queued request moved to a small buffer (Shrink) and the
// message was consumed: one split, the right bytes at each look. The next message, of
// the same length with its strings' ends elsewhere, gets its own.
func TestFieldsFollowTheLoop(t *testing.T) {
	first := link.AppendParse(nil, "a", "select 12", []byte{0, 0})
	second := link.AppendParse(nil, "ab", "select 1", []byte{0, 0})
	require.Equal(t, len(first), len(second))
	before := wire.Query(nil, "select 0") // the request before: all is buffered after it
	s := fieldsSession(append(append(before, first...), second...))
	splits := 0
	testHookSplit = func() { splits++ }
	defer func() { testHookSplit = nil }()
	want := func(name, query string, body []byte, seq uint64) {
		t.Helper()
		f := s.fieldsOf(body, seq)
		require.True(t, f.OK())
		require.Equal(t, name, string(f.First(body)))
		require.Equal(t, query, string(f.Second(body)))
	}

	n := pastFirst(t, s.rd, 'P')
	m, err := s.rd.Peek(n)
	require.NoError(t, err)
	want("a", "select 12", wire.Body(m), s.rd.Seq()+1) // loopable's look
	_, _, err = s.rd.Next()
	require.NoError(t, err)
	m, err = s.rd.Peek(n)
	require.NoError(t, err)
	want("a", "select 12", wire.Body(m), s.rd.Seq()) // stickyNeed's
	at := &m[0]
	s.rd.Shrink()
	m, err = s.rd.Message(n)
	require.NoError(t, err)
	require.NotSame(t, at, &m[0], "Shrink moved the bytes")
	want("a", "select 12", wire.Body(m), s.rd.Seq()) // the rewrite's, on the moved bytes
	require.Equal(t, 1, splits)

	_, n, whole := s.rd.Whole()
	require.True(t, whole)
	m, err = s.rd.Peek(n)
	require.NoError(t, err)
	want("ab", "select 1", wire.Body(m), s.rd.Seq()+1)
	_, _, err = s.rd.Next()
	require.NoError(t, err)
	m, err = s.rd.Message(n)
	require.NoError(t, err)
	want("ab", "select 1", wire.Body(m), s.rd.Seq())
	require.Equal(t, 2, splits)
}
