package proxy

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestLinkEnd: the release rule at a ReadyForQuery, without a server.
func TestLinkEnd(t *testing.T) {
	const (
		tx   = config.PoolModeTransaction
		sess = config.PoolModeSession
		stmt = config.PoolModeStatement
	)
	for _, tc := range []struct {
		name  string
		l     linkState
		out   linkOutcome
		reset bool
	}{
		{"transaction ends", linkState{idle: true, status: 'I', mode: tx, modeNow: tx}, linkRelease, false},
		{"inside a transaction", linkState{idle: true, status: 'T', mode: tx, modeNow: tx}, linkKeep, false},
		{"failed transaction", linkState{idle: true, status: 'E', mode: tx, modeNow: tx}, linkKeep, false},
		{"a Sync still to come (pipeline)", linkState{status: 'I', mode: tx, modeNow: tx}, linkKeep, false},
		{"pinned", linkState{idle: true, status: 'I', pinned: pinTemp, mode: tx, modeNow: tx}, linkKeep, false},
		{"pinned, client gone", linkState{idle: true, status: 'I', pinned: pinTemp, mode: tx, modeNow: tx, closed: true}, linkKeep, false},
		{"session mode keeps", linkState{idle: true, status: 'I', mode: sess, modeNow: sess}, linkKeep, false},
		{"session mode, client gone: reset", linkState{idle: true, status: 'I', mode: sess, modeNow: sess, closed: true}, linkRelease, true},
		{"RELOAD left session mode: reset", linkState{idle: true, status: 'I', mode: sess, modeNow: tx}, linkRelease, true},
		{"RELOAD left session mode, in a transaction", linkState{idle: true, status: 'T', mode: sess, modeNow: tx}, linkKeep, false},
		{"RELOAD left session mode, forced session", linkState{idle: true, status: 'I', mode: sess, modeNow: tx, force: true}, linkKeep, false},
		{"statement mode", linkState{idle: true, status: 'I', mode: stmt, modeNow: stmt}, linkRelease, false},
		{"statement mode, transaction block", linkState{idle: true, status: 'T', mode: stmt, modeNow: stmt}, linkBadStatement, false},
		{"client gone inside a transaction", linkState{idle: true, status: 'T', mode: tx, modeNow: tx, closed: true}, linkDirtyClosed, false},
		{"client gone, answers outstanding", linkState{status: 'T', mode: tx, modeNow: tx, closed: true}, linkKeep, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reset := linkEnd(tc.l)
			require.Equal(t, tc.out, out)
			require.Equal(t, tc.reset, reset)
		})
	}
}

// TestLinkEndOnlyAtSafePoints: over every combination, a server is released only at a
// ReadyForQuery 'I' with nothing outstanding and nothing pinned, and is never kept by a
// client that has gone when it could be released or closed.
func TestLinkEndOnlyAtSafePoints(t *testing.T) {
	modes := []config.PoolMode{config.PoolModeSession, config.PoolModeTransaction, config.PoolModeStatement}
	for _, idle := range []bool{false, true} {
		for _, status := range []byte("ITE") {
			for _, pinned := range []pinReason{0, pinAdvisory} {
				for _, mode := range modes {
					for _, modeNow := range modes {
						for _, force := range []bool{false, true} {
							for _, closed := range []bool{false, true} {
								l := linkState{idle, status, pinned, mode, modeNow, force, closed}
								out, _ := linkEnd(l)
								what := fmt.Sprintf("%+v -> %d", l, out)
								if out == linkRelease {
									require.True(t, idle && status == 'I' && pinned == 0, what)
								}
								if out != linkKeep {
									require.True(t, idle, "only with nothing outstanding: %s", what)
								}
								if closed && idle && pinned == 0 {
									require.NotEqual(t, linkKeep, out, "a gone client's server is let go: %s", what)
								}
							}
						}
					}
				}
			}
		}
	}
}
