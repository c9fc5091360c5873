package link

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestErrorRule drives ErrorRule with the requests an ErrorResponse can answer, no
// sockets: which errors the client sees, which pgmux keeps or logs, what is recorded on
// the statements and when the server's skip to Sync is retired.
func TestErrorRule(t *testing.T) {
	def := &stmt{name: "s1"}
	reg := &stmt{name: "s2"}
	cases := []struct {
		name string
		f    errFacts
		want ErrStep
	}{
		{"nothing Queued: shown as it is", errFacts{}, ErrStep{}},
		{"nothing queued keeps a pending drop", errFacts{DropErr: true}, ErrStep{DropErr: true}},
		{"the client's Query", errFacts{Head: expect{Kind: 'Q'}, Queued: true},
			ErrStep{ReqErr: true}},
		{"the client's Sync ends no skip of its own", errFacts{Head: expect{Kind: 'S'}, Queued: true},
			ErrStep{ReqErr: true}},
		{"the client's FunctionCall", errFacts{Head: expect{Kind: 'F'}, Queued: true},
			ErrStep{ReqErr: true}},
		{"the client's Execute: the server skips to Sync", errFacts{Head: expect{Kind: 'E'}, Queued: true},
			ErrStep{ReqErr: true, Skip: true}},
		{"the client's Parse fails: its statement is not the client's", errFacts{Head: expect{Kind: 'P', Reg: reg}, Queued: true},
			ErrStep{ReqErr: true, RegFailed: true, Skip: true}},
		{"the client's Parse of the unnamed statement fails: the client has none",
			errFacts{Head: expect{Kind: 'P', Seq: 7}, Queued: true},
			ErrStep{ReqErr: true, UnnamedFailed: true, Skip: true}},
		{"a Parse pgmux answers itself fails no statement",
			errFacts{Head: expect{Kind: 'P', Fake: true, Seq: 7}, Queued: true},
			ErrStep{ReqErr: true, Skip: true}},
		{"pgmux's Parse of the client's unnamed statement on another server: shown, the client's statement kept",
			errFacts{Head: expect{Kind: 'P', Hide: true}, Queued: true},
			ErrStep{Skip: true}},
		{"pgmux's own Parse of a statement checked before: kept", errFacts{Head: expect{Kind: 'P', Hide: true, Reg: reg}, Queued: true, RegChecked: true},
			ErrStep{Skip: true}},
		{"pgmux's own Parse of a statement never checked, refused for its text: failed", errFacts{Head: expect{Kind: 'P', Hide: true, Reg: reg}, Queued: true, Rejected: true},
			ErrStep{RegFailed: true, Skip: true}},
		{"pgmux's check of a statement whose Parse it answered, refused: failed, not shown",
			errFacts{Head: expect{Kind: 'P', Hide: true, Reg: reg, Probe: true}, Queued: true, Rejected: true},
			ErrStep{Hide: true, Report: ReportQuiet, RegFailed: true, Skip: true}},
		{"pgmux's own Parse of a statement never checked, refused for the moment (25P02, a timeout): kept",
			errFacts{Head: expect{Kind: 'P', Hide: true, Reg: reg}, Queued: true},
			ErrStep{Skip: true}},
		{"the client's Bind under pgmux's name names the client's statement",
			errFacts{Head: expect{Kind: 'B', Def: def, Stmt: "pgmux_7"}, DefName: "s1", Queued: true},
			ErrStep{ReqErr: true, Rename: true, RenameTo: "s1", Skip: true}},
		{"the client's Describe of the unnamed statement served from the cache names \"\"",
			errFacts{Head: expect{Kind: 'D', Def: def, Stmt: "pgmux_7", Anon: true}, DefName: "s1", Queued: true},
			ErrStep{ReqErr: true, Rename: true, Skip: true}},
		{"a Bind with a fix of its own is not renamed twice",
			errFacts{Head: expect{Kind: 'B', Def: def, Stmt: "pgmux_7", Fix: &fix{}}, DefName: "s1", Queued: true},
			ErrStep{ReqErr: true, Skip: true}},
		{"a Bind of a statement sent under its own name", errFacts{Head: expect{Kind: 'B', Def: def}, Queued: true},
			ErrStep{ReqErr: true, Skip: true}},
		{"pgmux's hidden Query: logged, not shown", errFacts{Head: expect{Kind: 'Q', Hide: true}, Queued: true},
			ErrStep{Hide: true, Report: ReportOwn}},
		{"pgmux's settings query: refused", errFacts{Head: expect{Kind: 'Q', Hide: true, Setting: SetSync, Stmt: "work_mem"}, Queued: true, Known: true},
			ErrStep{Hide: true, Report: ReportSetting, Refused: true}},
		{"pgmux's hidden settings Sync", errFacts{Head: expect{Kind: 'S', Hide: true, Setting: SetSync}, Queued: true},
			ErrStep{Refused: true}},
		{"pgmux's PREPARE before the client's EXECUTE: shown, the EXECUTE's dropped",
			errFacts{Head: expect{Kind: 'Q', Hide: true, ShowErr: true, Stmt: "s1", Prep: 3}, Queued: true, Known: true},
			ErrStep{DropErr: true, ForgetStmt: true}},
		{"the EXECUTE's own error after it: hidden",
			errFacts{Head: expect{Kind: 'Q'}, Queued: true, DropErr: true},
			ErrStep{ReqErr: true, Hide: true, Report: ReportQuiet}},
		{"a hidden Query leaves a pending drop alone",
			errFacts{Head: expect{Kind: 'Q', Hide: true}, Queued: true, DropErr: true},
			ErrStep{Hide: true, Report: ReportOwn, DropErr: true}},
		{"pgmux's PREPARE before a Query: held",
			errFacts{Head: expect{Kind: 'Q', Hide: true, Hold: true, Stmt: "s1"}, Queued: true, Known: true},
			ErrStep{Hide: true, Hold: true, ForgetStmt: true}},
		{"the client's Query after a held error: its 26000 becomes the held one",
			errFacts{Head: expect{Kind: 'Q'}, Queued: true, Held: true},
			ErrStep{ReqErr: true, UseHeld: true}},
		{"a hidden Query does not take the held error",
			errFacts{Head: expect{Kind: 'Q', Hide: true}, Queued: true, Held: true},
			ErrStep{Hide: true, Report: ReportOwn}},
		{"the state check failed: the client stays pinned",
			errFacts{Head: expect{Kind: 'Q', Hide: true, Check: true}, Queued: true},
			ErrStep{Hide: true, Report: ReportOwn, CheckFailed: true}},
		{"the client's EXECUTE met a changed plan: prepared anew",
			errFacts{Head: expect{Kind: 'Q', Stmt: "s1"}, Queued: true, Known: true, StaleCode: true},
			ErrStep{ReqErr: true, StaleStmt: true}},
		{"the client's EXECUTE met a dropped type: prepared anew",
			errFacts{Head: expect{Kind: 'Q', Stmt: "s1"}, Queued: true, Known: true, Gone: true},
			ErrStep{ReqErr: true, StaleStmt: true}},
		{"an EXECUTE's other error leaves the statement",
			errFacts{Head: expect{Kind: 'Q', Stmt: "s1"}, Queued: true, Known: true},
			ErrStep{ReqErr: true}},
		{"an unknown server state is not told",
			errFacts{Head: expect{Kind: 'Q', Stmt: "s1"}, Queued: true, StaleCode: true},
			ErrStep{ReqErr: true}},
		{"the client's SQL PREPARE fails: its statement is not the client's",
			errFacts{Head: expect{Kind: 'Q', Reg: reg, Stmt: "s2"}, Queued: true, Known: true, RegChecked: true},
			ErrStep{ReqErr: true, RegFailed: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, ErrorRule(c.f))
		})
	}
}

// TestParseRejected: which errors answering pgmux's Parse of a statement it answered the
// client's Parse of itself say the client's Parse would have failed too.
func TestParseRejected(t *testing.T) {
	for code, want := range map[string]bool{
		"42601": true, "42P01": true, "42883": true, "42703": true, "42804": true, "22P02": true,
		"0A000": true, "3F000": true, "54023": true,
		"25P02": false, "55P03": false, "57014": false, "57P01": false, "40001": false, "40P01": false,
		"08006": false, "53200": false, "XX000": false, "": false,
	} {
		require.Equal(t, want, ParseRejected(code), code)
	}
}

func TestErrCode(t *testing.T) {
	m := []byte{'E', 0, 0, 0, 0}
	m = append(m, "SERROR\x00VERROR\x00C25P02\x00Mcurrent transaction is aborted\x00\x00"...)
	require.Equal(t, "25P02", ErrCode(m))
	require.Equal(t, "", ErrCode([]byte{'E', 0, 0, 0, 5, 0}))
	require.Equal(t, "", ErrCode([]byte{'E', 0, 0, 0, 8, 'S', 'x'}))
}
