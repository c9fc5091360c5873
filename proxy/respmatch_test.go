package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy/link"
)

// The response queue driven by message sequences alone, no sockets: requests as the
// relay queues them, the server's answers as PostgreSQL sends them, and the decisions the
// relay takes from respmatch.go at each server message.

// qReq is one request on the link: a client message or one pgmux slips in.
type qReq struct {
	kind    byte
	hide    bool
	fail    bool // the server answers it with an ErrorResponse
	variant bool // D: a statement's Describe (ParameterDescription first); E: PortalSuspended; Q: an empty query
}

// qMsg is one server message and the request it belongs to (-1 for none).
type qMsg struct {
	typ   byte
	owner int
}

// serverAnswers is what PostgreSQL sends for reqs, in order: after an error in an
// extended-protocol message it discards everything up to the next Sync, a Query's or
// FunctionCall's error ends with its ReadyForQuery, a Flush is answered by nothing.
func serverAnswers(reqs []qReq) []qMsg {
	var out []qMsg
	skipping := false
	add := func(owner int, types string) {
		for i := 0; i < len(types); i++ {
			out = append(out, qMsg{types[i], owner})
		}
	}
	for i, r := range reqs {
		if skipping && r.kind != 'S' {
			continue
		}
		switch r.kind {
		case 'S':
			skipping = false
			add(i, "Z")
		case 'H':
		case 'Q':
			switch {
			case r.fail:
				add(i, "EZ")
			case r.variant:
				add(i, "IZ")
			default:
				add(i, "TDDCNSCZ") // two statements, a notice and a ParameterStatus between
			}
		case 'F':
			if r.fail {
				add(i, "EZ")
			} else {
				add(i, "VZ")
			}
		default:
			if r.fail {
				add(i, "E")
				skipping = true
				continue
			}
			switch r.kind {
			case 'P':
				add(i, "1")
			case 'B':
				add(i, "2")
			case 'C':
				add(i, "3")
			case 'D':
				if r.variant {
					add(i, "tT")
				} else {
					add(i, "n")
				}
			case 'E':
				if r.variant {
					add(i, "Ds")
				} else {
					add(i, "DDC")
				}
			}
		}
	}
	return out
}

// qRun is what the relay's decisions made of a run.
type qRun struct {
	seen   string // server messages the client saw
	ready  string // the request each ReadyForQuery retired
	left   int    // requests still queued
	synced []bool
}

// driveQueue queues reqs (their seq numbers them) and feeds msgs through the queue's
// decisions as the relay does (relay.go Session.Pump: 'Z' retireReady, 'E' link.ErrorRule and
// skipToSync for an extended message, 'A' 'N' 'S' forwarded as they are, the rest answer),
// checking each against the request the server answered.
func driveQueue(t testing.TB, reqs []qReq, msgs []qMsg) qRun {
	run, _ := driveLink(t, reqs, msgs)
	return run
}

// driveLink is driveQueue on a linkBook: the client's requests are recorded as the relay
// records them (Session.account: linkBook.sentClient, which queues nothing for a Flush),
// pgmux's are queued as they are, and it returns the book after the answers.
func driveLink(t testing.TB, reqs []qReq, msgs []qMsg) (qRun, *linkBook) {
	b := &linkBook{txStatus: 'I'}
	q := &b.q
	for i, r := range reqs {
		if r.hide {
			if r.kind != 'H' { // a Flush is answered by nothing: nobody queues one
				q.push(expect{Kind: r.kind, Hide: true, Seq: uint32(i)})
			}
			continue
		}
		before := q.len()
		b.sentClient(r.kind, true)
		if q.len() > before {
			q.tail().Seq = uint32(i)
		} else {
			require.Equal(t, byte('H'), r.kind, "only a Flush queues nothing")
		}
	}
	var run qRun
	see := func(typ byte, hide bool) {
		if !hide {
			run.seen += string(typ)
		}
	}
	for _, m := range msgs {
		head, queued := q.peek()
		switch m.typ {
		case 'Z':
			e := retire(q, func(expect) {})
			require.Equal(t, uint32(m.owner), e.Seq, "ReadyForQuery retires the request it answers")
			if !e.Hide {
				b.readyAnswered('I')
			}
			run.ready += string(e.Kind)
			see('Z', e.Hide)
		case 'E':
			require.True(t, queued, "an error answers a queued request")
			require.Equal(t, uint32(m.owner), head.Seq, "the error belongs to the oldest request")
			r := link.ErrorRule(link.ErrFacts[stmtDef, errFix, clearDrop]{Head: head, Queued: true})
			require.Equal(t, link.ErrorSkipsToSync(head.Kind), r.Skip)
			if r.Skip {
				b.errorSkips(func(expect, bool) {})
				synced := !b.errSkip
				run.synced = append(run.synced, synced)
				if synced {
					h, _ := q.peek()
					require.Equal(t, byte('S'), h.Kind)
				} else {
					require.Zero(t, q.len())
				}
			}
			if head.Hide && !r.Hide {
				// pgmux's own extended request (a Parse in front of the client's Bind) or
				// Sync: the client's requests behind it are skipped, so it sees the error.
				require.NotEqual(t, byte('Q'), head.Kind, "a hidden Query's error is pgmux's")
			}
			see('E', r.Hide)
		case 'A', 'N', 'S':
			see(m.typ, false) // forwarded whatever the head (relay.go Pump)
		default:
			st := answer(q, m.typ)
			require.True(t, st.Queued, "%q answers a queued request", m.typ)
			require.Equal(t, uint32(m.owner), st.Head.Seq, "%q is matched to the request it answers", m.typ)
			require.Equal(t, head.Hide, st.Hide, "%q is hidden exactly when its request is pgmux's", m.typ)
			see(m.typ, st.Hide)
		}
		requireCounters(t, q)
		require.GreaterOrEqual(t, b.pending, 0)
	}
	run.left = q.len()
	return run, b
}

// answer and retire do what Session.answer and Session.retireReady do to the queue.
func answer(q *respQueue, typ byte) link.AnswerStep[stmtDef] {
	st := q.ring.Answer(typ)
	q.publish()
	return st
}

func retire(q *respQueue, skipped func(expect)) expect {
	e := q.ring.RetireReady(skipped)
	q.publish()
	return e
}

// requireCounters checks the queue's atomics against its contents.
func requireCounters(t testing.TB, q *respQueue) {
	var fakes, clears int32
	q.each(func(e expect) {
		if e.Fake {
			fakes++
		}
		if e.Clear != 0 {
			clears++
		}
	})
	require.Equal(t, fakes, q.fakes.Load(), "fakes counts the fake requests queued")
	require.Equal(t, clears, q.clears.Load(), "clears counts the clearing Queries queued")
}

// reqs parses a request script: message letters, h before one marks it pgmux's own,
// ! marks it failing, * its variant.
func reqs(script string) []qReq {
	var out []qReq
	var r qReq
	for i := 0; i < len(script); i++ {
		switch c := script[i]; c {
		case 'h':
			r.hide = true
		case '!':
			r.fail = true
		case '*':
			r.variant = true
		case ' ':
		default:
			r.kind = c
			out = append(out, r)
			r = qReq{}
		}
	}
	return out
}

func TestRespQueueSequences(t *testing.T) {
	for _, tc := range []struct {
		name, reqs, seen, ready string
		left                    int
	}{
		{"simple query", "Q", "TDDCNSCZ", "Q", 0},
		{"empty query", "*Q", "IZ", "Q", 0},
		{"query error", "!Q", "EZ", "Q", 0},
		{"extended batch", "PB*DES", "12tTDDCZ", "S", 0},
		{"pipeline of two batches", "PBES PBES", "12DDCZ12DDCZ", "SS", 0},
		{"error mid-pipeline skips to its Sync", "P!BES PBES", "1EZ12DDCZ", "SS", 0},
		{"error in the second batch", "PBES P!BES", "12DDCZ1EZ", "SS", 0},
		{"error after a Flush, before a Sync", "PBH!EH S", "12EZ", "S", 0},
		{"Flush without Sync keeps requests", "P*DH", "1tT", "", 0},
		{"Flush without Sync, Execute pending", "PBH", "12", "", 0},
		{"portal suspended", "PB*ES", "12DsZ", "S", 0},
		{"Close", "CS", "3Z", "S", 0},
		{"NoData Describe", "PBDES", "12nDDCZ", "S", 0},
		{"function call", "F", "VZ", "F", 0},
		{"function call error", "!F", "EZ", "F", 0},
		{"pgmux's Parse before the client's Bind", "hPBES", "2DDCZ", "S", 0},
		{"pgmux's Close and Parse in front", "hChPBES", "2DDCZ", "S", 0},
		// The client's Bind behind it is skipped: the error is the answer it gets.
		{"pgmux's failing Parse shows its error", "h!PBES", "EZ", "S", 0},
		// Notices and ParameterStatus are forwarded whatever request they come with.
		{"pgmux's hidden query first", "hQ Q", "NSTDDCNSCZ", "QQ", 0},
		{"pgmux's hidden query fails", "h!Q PBES", "12DDCZ", "QS", 0},
		{"query after a batch", "PBES Q", "12DDCZTDDCNSCZ", "SQ", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := reqs(tc.reqs)
			run := driveQueue(t, rs, serverAnswers(rs))
			require.Equal(t, tc.seen, run.seen, "what the client sees")
			require.Equal(t, tc.ready, run.ready, "what each ReadyForQuery retires")
			require.Equal(t, tc.left, run.left)
		})
	}
}

// TestRespQueueRowsAndHidden: pgmux reads the rows of its own queries, and a retried
// Describe's ParameterDescription is not shown twice.
func TestRespQueueRowsAndHidden(t *testing.T) {
	q := &respQueue{}
	q.push(expect{Kind: 'Q', Hide: true, Check: true})
	q.push(expect{Kind: 'Q', Hide: true, Setting: link.SetRead})
	q.push(expect{Kind: 'Q'})
	q.markClear(1)
	q.push(expect{Kind: 'D', ParamsSent: true})
	q.push(expect{Kind: 'S'})
	requireCounters(t, q)
	for _, step := range []struct {
		typ  byte
		row  int
		hide bool
		z    bool
	}{
		{'T', link.RowCheck, true, false}, {'D', link.RowCheck, true, false}, {'C', link.RowCheck, true, false}, {'Z', 0, true, true},
		{'T', link.RowSettings, true, false}, {'D', link.RowSettings, true, false}, {'C', link.RowSettings, true, false}, {'Z', 0, true, true},
		{'C', link.RowClear, false, false}, {'Z', 0, false, true},
		{'t', 0, true, false}, {'T', 0, false, false}, {'Z', 0, false, true},
	} {
		if step.z {
			e := retire(q, func(expect) {})
			require.Equal(t, step.hide, e.Hide)
			requireCounters(t, q)
			continue
		}
		st := answer(q, step.typ)
		require.Equal(t, step.row, st.Row, "%q", step.typ)
		require.Equal(t, step.hide, st.Hide, "%q", step.typ)
	}
	require.Zero(t, q.len())
}

// TestRespQueueConfirms: the answers that confirm a preparation, a settings sync and a
// client's statement are reported for the relay to record.
func TestRespQueueConfirms(t *testing.T) {
	q := &respQueue{}
	reg := &stmtDef{}
	q.push(expect{Kind: 'P', Stmt: "pgmux_1", Prep: 3, Reg: reg})
	q.push(expect{Kind: 'Q', Hide: true, Stmt: "pgmux_2", Prep: 4})
	q.push(expect{Kind: 'Q', Hide: true, Setting: link.SetSync, Stmt: "work_mem", Val: "8MB"})
	st := answer(q, '1')
	require.True(t, st.Popped && st.Prepared && st.Checked)
	require.Equal(t, "pgmux_1", st.Head.Stmt)
	st = answer(q, 'C')
	require.True(t, st.Prepared && !st.Popped && !st.Synced, "a PREPARE's CommandComplete confirms it; its Query ends at ReadyForQuery")
	retire(q, func(expect) {})
	st = answer(q, 'C')
	require.True(t, st.Synced && !st.Prepared && st.Hide)
	require.Equal(t, "work_mem", st.Head.Stmt)
	retire(q, func(expect) {})

	// A clearing Execute's CommandComplete is read by pgmux, which retires it.
	q.push(expect{Kind: 'E'})
	q.markClear(1)
	st = answer(q, 'D')
	require.False(t, st.Popped)
	st = answer(q, 'C')
	require.Equal(t, link.RowClear, st.Row)
	require.False(t, st.Popped, "readClear retires it")
	require.Equal(t, 1, q.len())
	requireCounters(t, q)
}

// TestRespQueueSkippedReported: the requests an error or a ReadyForQuery retires
// unanswered are handed to the caller, first marked.
func TestRespQueueSkippedReported(t *testing.T) {
	q := &respQueue{}
	for _, k := range "PBDES" {
		q.push(expect{Kind: byte(k)})
	}
	answer(q, '1')
	var got []string
	require.True(t, q.skipToSync(func(e expect, first bool) { got = append(got, fmt.Sprintf("%c%v", e.Kind, first)) }))
	require.Equal(t, []string{"Btrue", "Dfalse", "Efalse"}, got)
	got = got[:0]
	q.push(expect{Kind: 'P'})
	q.push(expect{Kind: 'Q'})
	require.Equal(t, byte('S'), retire(q, func(e expect) { got = append(got, string(e.Kind)) }).Kind)
	require.Empty(t, got)
	require.Equal(t, byte('Q'), retire(q, func(e expect) { got = append(got, string(e.Kind)) }).Kind)
	require.Equal(t, []string{"P"}, got, "a Parse the server never answered (an error skipped it, say) goes with the ReadyForQuery")
}

// FuzzRespQueue drives the queue with request sequences built from the input, answered
// as PostgreSQL answers them (errors anywhere, Flush without Sync, pgmux's hidden
// requests, clearing Queries): every server message must be matched to the request it
// belongs to, hidden exactly when that request is pgmux's, the counters must agree with
// the contents, and after a final Sync nothing may be left.
func FuzzRespQueue(f *testing.F) {
	for _, s := range []string{"PBES", "P!BES PBES", "hPBES", "Q!QF", "PBH!EHS", "h!QPBES"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 200 {
			data = data[:200]
		}
		var rs []qReq
		for _, b := range data {
			r := qReq{kind: "PBDCESQFH"[int(b&0x0f)%9], hide: b&0x10 != 0, fail: b&0x60 == 0x60, variant: b&0x80 != 0}
			rs = append(rs, r)
		}
		rs = append(rs, qReq{kind: 'S'})
		run, b := driveLink(t, rs, serverAnswers(rs))
		require.Zero(t, run.left, "requests left after the final Sync's ReadyForQuery")
		require.True(t, b.quiet(), "the link owes nothing after the final Sync's ReadyForQuery: pending %d, unsynced %v, %d queued", b.pending, b.unsynced, b.q.len())
		require.False(t, b.errSkip, "no skip outlives the final Sync")
		want := 0
		for _, r := range rs {
			if strings.IndexByte("SQF", r.kind) >= 0 {
				want++
			}
		}
		require.LessOrEqual(t, len(run.ready), want)
	})
}

// TestRespQueueCopy: COPY's messages belong to the request that started it (a Query, or
// an Execute up to its CommandComplete) and are forwarded, whatever the direction; the
// client's CopyData, CopyDone and CopyFail are no requests (Session.account queues
// nothing for them), and an error during COPY ends the request as any error does.
func TestRespQueueCopy(t *testing.T) {
	// msgs writes server messages; @n before them names the request (its index) they
	// answer.
	msgs := func(script string) []qMsg {
		var out []qMsg
		owner := 0
		for i := 0; i < len(script); i++ {
			switch c := script[i]; {
			case c == '@':
				i++
				owner = int(script[i] - '0')
			case c == ' ':
			default:
				out = append(out, qMsg{c, owner})
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, reqs, msgs, seen, ready string
	}{
		{"COPY TO STDOUT by Query", "Q", "@0 HdddcCZ", "HdddcCZ", "Q"},
		{"COPY FROM STDIN by Query", "Q", "@0 GCZ", "GCZ", "Q"},
		{"COPY FROM STDIN refused by CopyFail", "Q", "@0 GEZ", "GEZ", "Q"},
		{"notice and ParameterStatus during COPY", "Q", "@0 HdNdScCZ", "HdNdScCZ", "Q"},
		{"COPY TO by Execute", "PBES", "@0 1 @1 2 @2 HddcC @3 Z", "12HddcCZ", "S"},
		{"COPY FROM by Execute, error skips to Sync", "PBES", "@0 1 @1 2 @2 G E @3 Z", "12GEZ", "S"},
		{"COPY in a pipeline, then a query", "PBES Q", "@0 1 @1 2 @2 HdcC @3 Z @4 TDCZ", "12HdcCZTDCZ", "SQ"},
		{"COPY both (replication) by Query", "Q", "@0 WddcCZ", "WddcCZ", "Q"},
		{"pgmux's hidden query before the client's COPY", "hQ Q", "@0 CZ @1 HdcCZ", "HdcCZ", "QQ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := driveQueue(t, reqs(tc.reqs), msgs(tc.msgs))
			require.Equal(t, tc.seen, run.seen, "what the client sees")
			require.Equal(t, tc.ready, run.ready, "what each ReadyForQuery retires")
			require.Zero(t, run.left)
		})
	}
}
