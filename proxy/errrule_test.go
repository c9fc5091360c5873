package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestErrorRule drives errorRule with the requests an ErrorResponse can answer, no
// sockets: which errors the client sees, which pgmux keeps or logs, what is recorded on
// the statements and when the server's skip to Sync is retired.
func TestErrorRule(t *testing.T) {
	def := &stmtDef{name: "s1"}
	reg := &stmtDef{name: "s2"}
	cases := []struct {
		name string
		f    errFacts
		want errStep
	}{
		{"nothing queued: shown as it is", errFacts{}, errStep{}},
		{"nothing queued keeps a pending drop", errFacts{dropErr: true}, errStep{dropErr: true}},
		{"the client's Query", errFacts{head: expect{kind: 'Q'}, queued: true},
			errStep{reqErr: true}},
		{"the client's Sync ends no skip of its own", errFacts{head: expect{kind: 'S'}, queued: true},
			errStep{reqErr: true}},
		{"the client's FunctionCall", errFacts{head: expect{kind: 'F'}, queued: true},
			errStep{reqErr: true}},
		{"the client's Execute: the server skips to Sync", errFacts{head: expect{kind: 'E'}, queued: true},
			errStep{reqErr: true, skip: true}},
		{"the client's Parse fails: its statement is not the client's", errFacts{head: expect{kind: 'P', reg: reg}, queued: true},
			errStep{reqErr: true, regFailed: true, skip: true}},
		{"pgmux's own Parse of a statement checked before: kept", errFacts{head: expect{kind: 'P', hide: true, reg: reg}, queued: true, regChecked: true},
			errStep{skip: true}},
		{"pgmux's own Parse of a statement never checked: failed", errFacts{head: expect{kind: 'P', hide: true, reg: reg}, queued: true},
			errStep{regFailed: true, skip: true}},
		{"the client's Bind under pgmux's name names the client's statement",
			errFacts{head: expect{kind: 'B', def: def, stmt: "pgmux_7"}, queued: true},
			errStep{reqErr: true, rename: true, renameTo: "s1", skip: true}},
		{"the client's Describe of the unnamed statement served from the cache names \"\"",
			errFacts{head: expect{kind: 'D', def: def, stmt: "pgmux_7", anon: true}, queued: true},
			errStep{reqErr: true, rename: true, skip: true}},
		{"a Bind with a fix of its own is not renamed twice",
			errFacts{head: expect{kind: 'B', def: def, stmt: "pgmux_7", fix: &errFix{}}, queued: true},
			errStep{reqErr: true, skip: true}},
		{"a Bind of a statement sent under its own name", errFacts{head: expect{kind: 'B', def: def}, queued: true},
			errStep{reqErr: true, skip: true}},
		{"pgmux's hidden Query: logged, not shown", errFacts{head: expect{kind: 'Q', hide: true}, queued: true},
			errStep{hide: true, report: reportOwn}},
		{"pgmux's settings query: refused", errFacts{head: expect{kind: 'Q', hide: true, setting: setSync, stmt: "work_mem"}, queued: true, known: true},
			errStep{hide: true, report: reportSetting, refused: true}},
		{"pgmux's hidden settings Sync", errFacts{head: expect{kind: 'S', hide: true, setting: setSync}, queued: true},
			errStep{refused: true}},
		{"pgmux's PREPARE before the client's EXECUTE: shown, the EXECUTE's dropped",
			errFacts{head: expect{kind: 'Q', hide: true, showErr: true, stmt: "s1", prep: 3}, queued: true, known: true},
			errStep{dropErr: true, forgetStmt: true}},
		{"the EXECUTE's own error after it: hidden",
			errFacts{head: expect{kind: 'Q'}, queued: true, dropErr: true},
			errStep{reqErr: true, hide: true, report: reportQuiet}},
		{"a hidden Query leaves a pending drop alone",
			errFacts{head: expect{kind: 'Q', hide: true}, queued: true, dropErr: true},
			errStep{hide: true, report: reportOwn, dropErr: true}},
		{"pgmux's PREPARE before a Query: held",
			errFacts{head: expect{kind: 'Q', hide: true, hold: true, stmt: "s1"}, queued: true, known: true},
			errStep{hide: true, hold: true, forgetStmt: true}},
		{"the client's Query after a held error: its 26000 becomes the held one",
			errFacts{head: expect{kind: 'Q'}, queued: true, held: true},
			errStep{reqErr: true, useHeld: true}},
		{"a hidden Query does not take the held error",
			errFacts{head: expect{kind: 'Q', hide: true}, queued: true, held: true},
			errStep{hide: true, report: reportOwn}},
		{"the state check failed: the client stays pinned",
			errFacts{head: expect{kind: 'Q', hide: true, check: true}, queued: true},
			errStep{hide: true, report: reportOwn, checkFailed: true}},
		{"the client's EXECUTE met a changed plan: prepared anew",
			errFacts{head: expect{kind: 'Q', stmt: "s1"}, queued: true, known: true, staleCode: true},
			errStep{reqErr: true, staleStmt: true}},
		{"the client's EXECUTE met a dropped type: prepared anew",
			errFacts{head: expect{kind: 'Q', stmt: "s1"}, queued: true, known: true, gone: true},
			errStep{reqErr: true, staleStmt: true}},
		{"an EXECUTE's other error leaves the statement",
			errFacts{head: expect{kind: 'Q', stmt: "s1"}, queued: true, known: true},
			errStep{reqErr: true}},
		{"an unknown server state is not told",
			errFacts{head: expect{kind: 'Q', stmt: "s1"}, queued: true, staleCode: true},
			errStep{reqErr: true}},
		{"the client's SQL PREPARE fails: its statement is not the client's",
			errFacts{head: expect{kind: 'Q', reg: reg, stmt: "s2"}, queued: true, known: true, regChecked: true},
			errStep{reqErr: true, regFailed: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, errorRule(c.f))
		})
	}
}
