package proxy

import (
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
			require.Equal(t, tc.want, planChanged(errorMsg(tc.fields...)))
		})
	}
}

func TestParamsKeepMeaning(t *testing.T) {
	types := func(oids ...uint32) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(oids)))
		for _, o := range oids {
			b = binary.BigEndian.AppendUint32(b, o)
		}
		return b
	}
	bindMsg := func(formats ...uint16) []byte {
		b := []byte{'B', 0, 0, 0, 0, 0, 's', 0}
		b = binary.BigEndian.AppendUint16(b, uint16(len(formats)))
		for _, f := range formats {
			b = binary.BigEndian.AppendUint16(b, f)
		}
		return binary.BigEndian.AppendUint16(b, 1)
	}
	withParam := "SELECT * FROM t WHERE a = $1"
	for _, tc := range []struct {
		name string
		def  *stmtDef
		kind byte
		msg  []byte
		want bool
	}{
		{"text parameter, inferred type", &stmtDef{query: withParam, types: types()}, 'B', bindMsg(), true},
		{"text format code given", &stmtDef{query: withParam, types: types(0)}, 'B', bindMsg(0), true},
		{"binary parameter, inferred type", &stmtDef{query: withParam, types: types(0)}, 'B', bindMsg(1), false},
		{"binary parameter, type given", &stmtDef{query: withParam, types: types(20)}, 'B', bindMsg(1), true},
		{"describe, inferred types", &stmtDef{query: withParam, types: types()}, 'D', nil, false},
		{"describe, types given", &stmtDef{query: withParam, types: types(20)}, 'D', nil, true},
		{"describe, no parameters", &stmtDef{query: "SELECT * FROM t", types: types()}, 'D', nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, paramsKeepMeaning(tc.def, tc.kind, tc.msg))
		})
	}
}

func TestReqLog(t *testing.T) {
	var l reqLog
	msg := func(typ byte) []byte { return []byte{typ, 0, 0, 0, 4} }
	l.add(msg('B'))
	l.add(msg('E'))
	require.True(t, l.open)
	require.Equal(t, 0, l.bindAt)
	require.Equal(t, 5, l.execAt)
	l.add(msg('S'))
	require.False(t, l.open)
	l.add(msg('B')) // a new request starts afresh
	require.Equal(t, 5, len(l.buf))
	require.Equal(t, -1, l.execAt)
	l.skip('d') // COPY data is not kept...
	require.True(t, l.spoiled)
	l.skip('c') // ...and CopyDone ends the request
	require.False(t, l.open)
	l.add(msg('B'))
	require.False(t, l.spoiled)
}

// TestReqLogKeepsOnlyRetryable: a request is logged only while a retry could come of it.
// planRetry replays from a failed Bind or Describe of a statement pgmux prepared, with no
// Bind or Execute before it; once a Bind of the unnamed statement or an Execute has gone
// out before any such message, nothing of the request could be replayed, and its
// messages are not copied (pgbench -M extended without the statement cache).
func TestReqLogKeepsOnlyRetryable(t *testing.T) {
	msg := func(typ byte) []byte { return []byte{typ, 0, 0, 0, 4} }
	def := &stmtDef{server: "pgmux_x"}
	sqlDef := &stmtDef{server: "pgmux_y", sql: true}
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
			var l reqLog
			for _, es := range tc.es {
				l.expects(es)
				l.add(msg(es[len(es)-1].Kind))
			}
			require.Equal(t, tc.kept, !l.spoiled)
			require.Equal(t, tc.kept, l.keeps('H'))
			l.add(msg('S'))
			l.expects([]expect{{Kind: 'P'}}) // the next request starts afresh
			require.False(t, l.spoiled)
		})
	}
	var l reqLog
	require.False(t, l.keeps('E'), "an Execute before any candidate spoils the request")
	require.True(t, l.spoiled)
	l.skip('S')
	l.expects([]expect{{Kind: 'D', Def: def}})
	require.True(t, l.keeps('E'), "after a candidate, the Execute is kept for the replay")
	l.add(msg('E'))
	require.Equal(t, 0, l.execAt)
}
