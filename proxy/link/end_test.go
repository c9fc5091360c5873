package link

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestEnd: the release rule at a ReadyForQuery, without a server.
func TestEnd(t *testing.T) {
	const (
		tx   = config.PoolModeTransaction
		sess = config.PoolModeSession
		stmt = config.PoolModeStatement
	)
	for _, tc := range []struct {
		name  string
		l     State
		out   Outcome
		reset bool
	}{
		{"transaction ends", State{Idle: true, Status: 'I', Mode: tx, ModeNow: tx}, Release, false},
		{"inside a transaction", State{Idle: true, Status: 'T', Mode: tx, ModeNow: tx}, Keep, false},
		{"failed transaction", State{Idle: true, Status: 'E', Mode: tx, ModeNow: tx}, Keep, false},
		{"a Sync still to come (pipeline)", State{Status: 'I', Mode: tx, ModeNow: tx}, Keep, false},
		{"pinned", State{Idle: true, Status: 'I', Pinned: true, Mode: tx, ModeNow: tx}, Keep, false},
		{"pinned, client gone", State{Idle: true, Status: 'I', Pinned: true, Mode: tx, ModeNow: tx, Closed: true}, Keep, false},
		{"session mode keeps", State{Idle: true, Status: 'I', Mode: sess, ModeNow: sess}, Keep, false},
		{"session mode, client gone: reset", State{Idle: true, Status: 'I', Mode: sess, ModeNow: sess, Closed: true}, Release, true},
		{"RELOAD left session Mode: reset", State{Idle: true, Status: 'I', Mode: sess, ModeNow: tx}, Release, true},
		{"RELOAD left session mode, in a transaction", State{Idle: true, Status: 'T', Mode: sess, ModeNow: tx}, Keep, false},
		{"RELOAD left session mode, forced session", State{Idle: true, Status: 'I', Mode: sess, ModeNow: tx, Force: true}, Keep, false},
		{"statement mode", State{Idle: true, Status: 'I', Mode: stmt, ModeNow: stmt}, Release, false},
		{"statement mode, transaction block", State{Idle: true, Status: 'T', Mode: stmt, ModeNow: stmt}, BadStatement, false},
		{"client gone inside a transaction", State{Idle: true, Status: 'T', Mode: tx, ModeNow: tx, Closed: true}, DirtyClosed, false},
		{"client gone, answers outstanding", State{Status: 'T', Mode: tx, ModeNow: tx, Closed: true}, Keep, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reset := End(tc.l)
			require.Equal(t, tc.out, out)
			require.Equal(t, tc.reset, reset)
		})
	}
}

// TestEndOnlyAtSafePoints: over every combination, a server is released only at a
// ReadyForQuery 'I' with nothing outstanding and nothing pinned, and is never kept by a
// client that has gone when it could be released or closed.
func TestEndOnlyAtSafePoints(t *testing.T) {
	modes := []config.PoolMode{config.PoolModeSession, config.PoolModeTransaction, config.PoolModeStatement}
	for _, idle := range []bool{false, true} {
		for _, status := range []byte("ITE") {
			for _, pinned := range []bool{false, true} {
				for _, mode := range modes {
					for _, modeNow := range modes {
						for _, force := range []bool{false, true} {
							for _, closed := range []bool{false, true} {
								l := State{idle, status, pinned, mode, modeNow, force, closed}
								out, _ := End(l)
								what := fmt.Sprintf("%+v -> %d", l, out)
								if out == Release {
									require.True(t, idle && status == 'I' && !pinned, what)
								}
								if out != Keep {
									require.True(t, idle, "only with nothing outstanding: %s", what)
								}
								if closed && idle && !pinned {
									require.NotEqual(t, Keep, out, "a gone client's server is let go: %s", what)
								}
							}
						}
					}
				}
			}
		}
	}
}
