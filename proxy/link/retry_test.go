package link

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func errorMsg(fields ...string) []byte {
	b := []byte{'E', 0, 0, 0, 0}
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

func TestPlanChanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		want   bool
	}{
		{"revalidate", []string{"SERROR", "C0A000", "Mcached plan must not change result type", "Fplancache.c", "RRevalidateCachedQuery"}, true},
		{"translated message", []string{"SERREUR", "C0A000", "Mle plan en cache ne doit pas modifier le type en résultat", "RRevalidateCachedQuery"}, true},
		{"another feature_not_supported", []string{"SERROR", "C0A000", "MFULL JOIN is only supported with merge-joinable join conditions", "Rselect_mergejoin_clauses"}, false},
		{"no routine field", []string{"SERROR", "C0A000", "Mcached plan must not change result type"}, true},
		{"another code", []string{"SERROR", "C42P01", "Mrelation does not exist", "RRevalidateCachedQuery"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, PlanChanged(errorMsg(tc.fields...)))
		})
	}
}

// typesOf is a Parse's parameter type section.
func typesOf(oids ...uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(oids)))
	for _, o := range oids {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	return b
}

// frame ends a message begun as typ + 4 length bytes + body: it fills in the length.
func frame(b []byte) []byte {
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// bindMsg is a Bind of statement stmt to the unnamed portal with the parameter format
// codes given and one text parameter "1"; no result formats.
func bindMsg(stmt string, formats ...uint16) []byte {
	b := append([]byte{'B', 0, 0, 0, 0, 0}, stmt...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(formats)))
	for _, f := range formats {
		b = binary.BigEndian.AppendUint16(b, f)
	}
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, '1')
	return frame(binary.BigEndian.AppendUint16(b, 0))
}

// describeMsg is a Describe of a statement ('S') or portal ('P') named name.
func describeMsg(kind byte, name string) []byte {
	return frame(append(append([]byte{'D', 0, 0, 0, 0, kind}, name...), 0))
}

var (
	executeMsg = []byte{'E', 0, 0, 0, 9, 0, 0, 0, 0, 0}
	syncMsg    = []byte{'S', 0, 0, 0, 4}
)

func TestParamsKeepMeaning(t *testing.T) {
	withParam := "SELECT * FROM t WHERE a = $1"
	for _, tc := range []struct {
		name  string
		query string
		types []byte
		kind  byte
		msg   []byte
		want  bool
	}{
		{"text parameter, inferred type", withParam, typesOf(), 'B', bindMsg("s"), true},
		{"text format code given", withParam, typesOf(0), 'B', bindMsg("s", 0), true},
		{"binary parameter, inferred type", withParam, typesOf(0), 'B', bindMsg("s", 1), false},
		{"binary parameter, type given", withParam, typesOf(20), 'B', bindMsg("s", 1), true},
		{"describe, inferred types", withParam, typesOf(), 'D', nil, false},
		{"describe, types given", withParam, typesOf(20), 'D', nil, true},
		{"describe, no parameters", "SELECT * FROM t", typesOf(), 'D', nil, true},
		{"a Bind cut short", withParam, typesOf(), 'B', []byte{'B', 0, 0, 0, 6, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ParamsKeepMeaning(tc.query, tc.types, tc.kind, tc.msg))
		})
	}
}

func byProtocol(s *stmt) bool { return !s.sql }

func TestLog(t *testing.T) {
	var l Log
	msg := func(typ byte) []byte { return []byte{typ, 0, 0, 0, 4} }
	l.Add(msg('B'))
	l.Add(msg('E'))
	require.True(t, l.open)
	require.Equal(t, 0, l.bindAt)
	require.Equal(t, 5, l.execAt)
	l.Add(msg('S'))
	require.False(t, l.open)
	l.Add(msg('B')) // a new request starts afresh
	require.Equal(t, 5, len(l.buf))
	require.Equal(t, -1, l.execAt)
	l.Skip('d') // COPY data is not kept...
	require.True(t, l.spoiled)
	l.Skip('c') // ...and CopyDone ends the request
	require.False(t, l.open)
	l.Add(msg('B'))
	require.False(t, l.spoiled)
}

// TestLogKeepsOnlyRetryable: a request is logged only while a retry could come of it.
// PlanRetry replays from a failed Bind or Describe of a statement pgmux prepared, with no
// Bind or Execute before it; once a Bind of the unnamed statement or an Execute has gone
// out before any such message, nothing of the request could be replayed, and its
// messages are not copied (pgbench -M extended without the statement cache).
func TestLogKeepsOnlyRetryable(t *testing.T) {
	msg := func(typ byte) []byte { return []byte{typ, 0, 0, 0, 4} }
	def := &stmt{name: "pgmux_x"}
	sqlDef := &stmt{name: "pgmux_y", sql: true}
	for _, tc := range []struct {
		name string
		es   [][]expect // one entry per send
		kept bool
	}{
		{"unnamed parse and bind", [][]expect{{{Kind: 'P'}}, {{Kind: 'B'}}}, false},
		{"bind of a cached statement", [][]expect{{{Kind: 'P', Hide: true}, {Kind: 'B', Def: def}}}, true},
		{"describe of a statement, then an unnamed bind", [][]expect{{{Kind: 'D', Def: def}}, {{Kind: 'B'}}}, true},
		{"a hidden bind", [][]expect{{{Kind: 'B', Def: def, Hide: true}}}, false},
		{"a SQL-prepared statement", [][]expect{{{Kind: 'B', Def: sqlDef}}}, false},
		{"portal describe only", [][]expect{{{Kind: 'D'}}}, true},
		{"an unnamed bind, then a cached one", [][]expect{{{Kind: 'B'}, {Kind: 'B', Def: def}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l Log
			for _, es := range tc.es {
				LogExpects(&l, es, byProtocol)
				l.Add(msg(es[len(es)-1].Kind))
			}
			require.Equal(t, tc.kept, !l.spoiled)
			require.Equal(t, tc.kept, l.Keeps('H'))
			l.Add(msg('S'))
			LogExpects(&l, []expect{{Kind: 'P'}}, byProtocol) // the next request starts afresh
			require.False(t, l.spoiled)
		})
	}
	var l Log
	require.False(t, l.Keeps('E'), "an Execute before any candidate spoils the request")
	require.True(t, l.spoiled)
	l.Skip('S')
	LogExpects(&l, []expect{{Kind: 'D', Def: def}}, byProtocol)
	require.True(t, l.Keeps('E'), "after a candidate, the Execute is kept for the replay")
	l.Add(executeMsg)
	require.Equal(t, 0, l.execAt)
}

// sent is one client message as the relay sends it: its bytes and its expectation.
type sent struct {
	msg []byte
	e   expect
}

// logRequest logs a request as the relay does (expectations first, then the bytes, the
// expectations of statements getting their offsets in the log) and returns the
// expectations the server would skip when the message at index fail gets a 0A000: that
// one and those after it, up to the Sync, which stays queued.
func logRequest(l *Log, req []sent, fail int) []expect {
	var queued []expect
	for _, m := range req {
		es := []expect{m.e}
		LogExpects(l, es, byProtocol)
		base := l.Add(m.msg)
		if es[0].Def != nil {
			es[0].Off += int32(base)
		}
		queued = append(queued, es[0])
	}
	if fail < 0 {
		return nil
	}
	return queued[fail : len(queued)-1]
}

// TestPlanRetry drives the 0A000 retry's decision with request bytes as the relay sends
// them (no sockets): which requests are sent again, and from where.
func TestPlanRetry(t *testing.T) {
	s := &stmt{name: "pgmux_1"}
	other := &stmt{name: "pgmux_2"}
	sqlStmt := &stmt{name: "pgmux_3", sql: true}
	keep := func(*expect, []byte) bool { return true }
	refuse := func(*expect, []byte) bool { return false }
	// the usual extended-protocol request of a named statement: Bind, Describe the
	// portal, Execute, Sync
	bde := []sent{
		{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
		{describeMsg('P', ""), expect{Kind: 'D'}},
		{executeMsg, expect{Kind: 'E'}},
		{syncMsg, expect{Kind: 'S'}},
	}
	cases := []struct {
		name   string
		req    []sent
		fail   int  // the message the server failed
		status byte // the transaction status after the error
		extra  int  // requests queued after the Sync
		keeps  func(*expect, []byte) bool
		before func(*Log)
		want   bool
	}{
		{name: "Bind, Describe, Execute, Sync", req: bde, want: true},
		{name: "Describe of the statement, Bind of it, Execute", req: []sent{
			{describeMsg('S', "pgmux_1"), expect{Kind: 'D', Def: s}},
			{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
			{executeMsg, expect{Kind: 'E'}},
			{syncMsg, expect{Kind: 'S'}},
		}, want: true},
		{name: "Describe of the statement, then a Bind of another", req: []sent{
			{describeMsg('S', "pgmux_1"), expect{Kind: 'D', Def: s}},
			{bindMsg("pgmux_2"), expect{Kind: 'B', Def: other}},
			{executeMsg, expect{Kind: 'E'}},
			{syncMsg, expect{Kind: 'S'}},
		}},
		{name: "nothing describes the result: a client with a cached shape gets the error", req: []sent{
			{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
			{executeMsg, expect{Kind: 'E'}},
			{syncMsg, expect{Kind: 'S'}},
		}},
		{name: "inside a transaction the error aborted", req: bde, status: 'E'},
		{name: "more was sent after the Sync", req: bde, extra: 1},
		{name: "the parameters would change meaning", req: bde, keeps: refuse},
		{name: "a statement of SQL PREPARE", req: []sent{
			{bindMsg("pgmux_3"), expect{Kind: 'B', Def: sqlStmt}},
			{describeMsg('P', ""), expect{Kind: 'D'}},
			{executeMsg, expect{Kind: 'E'}},
			{syncMsg, expect{Kind: 'S'}},
		}},
		{name: "an Execute ran before the failed Bind", req: []sent{
			{describeMsg('S', "pgmux_2"), expect{Kind: 'D', Def: other}},
			{bindMsg("pgmux_2"), expect{Kind: 'B', Def: other}},
			{executeMsg, expect{Kind: 'E'}},
			{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
			{describeMsg('P', ""), expect{Kind: 'D'}},
			{executeMsg, expect{Kind: 'E'}},
			{syncMsg, expect{Kind: 'S'}},
		}, fail: 3},
		{name: "pgmux's own hidden Describe failed", req: []sent{
			{describeMsg('S', "pgmux_1"), expect{Kind: 'D', Def: s, Hide: true}},
			{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
			{describeMsg('P', ""), expect{Kind: 'D'}},
			{syncMsg, expect{Kind: 'S'}},
		}},
		{name: "already retried once", req: bde, before: func(l *Log) { l.retried = true }},
		{name: "the request was too large to keep", req: []sent{
			{bindMsg("pgmux_1"), expect{Kind: 'B', Def: s}},
			{frame(append([]byte{'D', 0, 0, 0, 0, 'P'}, append(bytes.Repeat([]byte{'x'}, MaxLogged), 0)...)), expect{Kind: 'D'}},
			{syncMsg, expect{Kind: 'S'}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var l Log
			skipped := logRequest(&l, tc.req, tc.fail)
			if tc.before != nil {
				tc.before(&l)
			}
			status, keeps := tc.status, tc.keeps
			if status == 0 {
				status = 'I'
			}
			if keeps == nil {
				keeps = keep
			}
			r := Retry[stmt, fix, drop]{Status: status, Queued: 1 + tc.extra, Head: expect{Kind: 'S'},
				Skipped: skipped, ByProtocol: byProtocol, KeepsMeaning: keeps}
			replay, ok := PlanRetry(&l, r)
			require.Equal(t, tc.want, ok)
			if !ok {
				require.Nil(t, replay)
				return
			}
			var want []byte
			for _, m := range tc.req[tc.fail:] {
				want = append(want, m.msg...)
			}
			require.Equal(t, want, replay, "the replay is the request from the failed message on")
			_, again := PlanRetry(&l, r)
			require.False(t, again, "a request is retried once")
		})
	}

	t.Run("still open: its Sync was not sent", func(t *testing.T) {
		var l Log
		skipped := logRequest(&l, bde[:3], 0)
		_, ok := PlanRetry(&l, Retry[stmt, fix, drop]{Status: 'I', Queued: 1, Head: expect{Kind: 'E'},
			Skipped: skipped, ByProtocol: byProtocol, KeepsMeaning: keep})
		require.False(t, ok)
	})
	t.Run("a Fresh statement's parameters are not looked at", func(t *testing.T) {
		var l Log
		skipped := logRequest(&l, bde, 0)
		skipped[0].Fresh = true
		_, ok := PlanRetry(&l, Retry[stmt, fix, drop]{Status: 'I', Queued: 1, Head: expect{Kind: 'S'},
			Skipped: skipped, ByProtocol: byProtocol, KeepsMeaning: refuse})
		require.True(t, ok)
	})
}
