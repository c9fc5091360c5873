package link

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSentAfterReadError: a Query or FunctionCall the client sends after the server's
// error was read, before its Sync, is skipped by the server, which answers it with
// nothing: it is owed no ReadyForQuery, and the Sync's retires it, as skipped, and the
// Sync.
func TestSentAfterReadError(t *testing.T) {
	b := &book{TxStatus: 'I'}
	q := &Queue[stmt, fix, drop]{}
	b.SentClient(q, 'P', true)
	b.SentClient(q, 'B', true)
	b.ErrorSkips(q, func(expect, bool) {}) // the Bind's error, no Sync queued
	require.True(t, b.ErrSkip)
	require.False(t, b.SentClient(q, 'Q', true), "it starts nothing")
	b.SentClient(q, 'F', true)
	b.SentClient(q, 'P', true)
	require.Equal(t, 0, b.Pending)
	q.Push(&expect{Kind: 'Q', Hide: true}) // pgmux's own, skipped too
	b.SentClient(q, 'S', true)
	require.False(t, b.ErrSkip)
	var skipped string
	e := q.RetireReady(func(e expect) { skipped += string(e.Kind) })
	require.Equal(t, byte('S'), e.Kind)
	require.Equal(t, "QFPQ", skipped)
	b.ReadyAnswered('I')
	require.True(t, b.Quiet(q))
}
