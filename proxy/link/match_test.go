package link

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The response queue and the Book driven by message sequences alone, no sockets:
// requests as the relay queues them, the server's answers as PostgreSQL sends them, and
// the decisions the relay takes from match.go and book.go at each server message.

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
// decisions as the relay does (proxy/relay.go Session.Pump: 'Z' Queue.RetireReady, 'E'
// ErrorRule and Book.ErrorSkips for an extended message, 'A' 'N' 'S' forwarded as they
// are, the rest Queue.Answer), checking each against the request the server answered.
func driveQueue(t testing.TB, reqs []qReq, msgs []qMsg) qRun {
	run, _, _ := driveLink(t, reqs, msgs)
	return run
}

// driveLink is driveQueue on a Book: the client's requests are recorded as the relay
// records them (proxy's Session.account: Book.SentClient, which queues nothing for a
// Flush), pgmux's are queued as they are, and it returns the book and its queue after
// the answers.
func driveLink(t testing.TB, reqs []qReq, msgs []qMsg) (qRun, *book, *Queue[stmt, fix, drop]) {
	b := &book{TxStatus: 'I'}
	q := &Queue[stmt, fix, drop]{}
	for i, r := range reqs {
		if r.hide {
			if r.kind != 'H' { // a Flush is answered by nothing: nobody queues one
				q.Push(&expect{Kind: r.kind, Hide: true, Seq: uint32(i)})
			}
			continue
		}
		before := q.Len()
		b.SentClient(q, r.kind, true)
		if q.Len() > before {
			q.Tail().Seq = uint32(i)
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
		head, queued := q.Peek()
		switch m.typ {
		case 'Z':
			e := q.RetireReady(func(expect) {})
			require.Equal(t, uint32(m.owner), e.Seq, "ReadyForQuery retires the request it answers")
			if !e.Hide {
				b.ReadyAnswered('I')
			}
			run.ready += string(e.Kind)
			see('Z', e.Hide)
		case 'E':
			require.True(t, queued, "an error answers a queued request")
			require.Equal(t, uint32(m.owner), head.Seq, "the error belongs to the oldest request")
			r := ErrorRule(errFacts{Head: head, Queued: true})
			require.Equal(t, ErrorSkipsToSync(head.Kind), r.Skip)
			if r.Skip {
				b.ErrorSkips(q, func(expect, bool) {})
				synced := !b.ErrSkip
				run.synced = append(run.synced, synced)
				if synced {
					h, _ := q.Peek()
					require.Equal(t, byte('S'), h.Kind)
				} else {
					require.Zero(t, q.Len())
				}
			}
			if head.Hide && !r.Hide {
				// pgmux's own extended request (a Parse in front of the client's Bind) or
				// Sync: the client's requests behind it are skipped, so it sees the error.
				require.NotEqual(t, byte('Q'), head.Kind, "a hidden Query's error is pgmux's")
			}
			see('E', r.Hide)
		case 'A', 'N', 'S':
			see(m.typ, false) // forwarded whatever the head (proxy/relay.go Pump)
		default:
			plain, before := q.PlainRow(), q.Len()
			st := q.Answer(m.typ)
			if m.typ == 'D' && plain {
				// The relay skips Answer for such a row (proxy's Session.answer): it must
				// have nothing to do.
				require.Equal(t, AnswerStep[stmt]{Queued: true, Head: st.Head}, st, "a plain row is only relayed")
				require.Equal(t, before, q.Len(), "a plain row retires nothing")
			}
			require.True(t, st.Queued, "%q answers a queued request", m.typ)
			require.Equal(t, uint32(m.owner), st.Head.Seq, "%q is matched to the request it answers", m.typ)
			require.Equal(t, head.Hide, st.Hide, "%q is hidden exactly when its request is pgmux's", m.typ)
			see(m.typ, st.Hide)
		}
		requireCounts(t, q)
		require.GreaterOrEqual(t, b.Pending, 0)
	}
	run.left = q.Len()
	return run, b, q
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
	q := &Queue[stmt, fix, drop]{}
	q.Push(&expect{Kind: 'Q', Hide: true, Check: true})
	q.Push(&expect{Kind: 'Q', Hide: true, Setting: SetRead})
	q.Push(&expect{Kind: 'Q'})
	q.MarkClear(1)
	q.Push(&expect{Kind: 'D', ParamsSent: true})
	q.Push(&expect{Kind: 'S'})
	requireCounts(t, q)
	for _, step := range []struct {
		typ  byte
		row  int
		hide bool
		z    bool
	}{
		{'T', RowCheck, true, false}, {'D', RowCheck, true, false}, {'C', RowCheck, true, false}, {'Z', 0, true, true},
		{'T', RowSettings, true, false}, {'D', RowSettings, true, false}, {'C', RowSettings, true, false}, {'Z', 0, true, true},
		{'C', RowClear, false, false}, {'Z', 0, false, true},
		{'t', 0, true, false}, {'T', 0, false, false}, {'Z', 0, false, true},
	} {
		if step.z {
			e := q.RetireReady(func(expect) {})
			require.Equal(t, step.hide, e.Hide)
			requireCounts(t, q)
			continue
		}
		st := q.Answer(step.typ)
		require.Equal(t, step.row, st.Row, "%q", step.typ)
		require.Equal(t, step.hide, st.Hide, "%q", step.typ)
	}
	require.Zero(t, q.Len())
}

// TestRespQueueConfirms: the answers that confirm a preparation, a settings sync and a
// client's statement are reported for the relay to record.
func TestRespQueueConfirms(t *testing.T) {
	q := &Queue[stmt, fix, drop]{}
	reg := &stmt{}
	q.Push(&expect{Kind: 'P', Stmt: "pgmux_1", Prep: 3, Reg: reg})
	q.Push(&expect{Kind: 'Q', Hide: true, Stmt: "pgmux_2", Prep: 4})
	q.Push(&expect{Kind: 'Q', Hide: true, Setting: SetSync, Stmt: "work_mem", Val: "8MB"})
	st := q.Answer('1')
	require.True(t, st.Popped && st.Prepared && st.Checked)
	require.Equal(t, "pgmux_1", st.Head.Stmt)
	st = q.Answer('C')
	require.True(t, st.Prepared && !st.Popped && !st.Synced, "a PREPARE's CommandComplete confirms it; its Query ends at ReadyForQuery")
	q.RetireReady(func(expect) {})
	st = q.Answer('C')
	require.True(t, st.Synced && !st.Prepared && st.Hide)
	require.Equal(t, "work_mem", st.Head.Stmt)
	q.RetireReady(func(expect) {})

	// A clearing Execute's CommandComplete is read by pgmux, which retires it.
	q.Push(&expect{Kind: 'E'})
	q.MarkClear(1)
	st = q.Answer('D')
	require.False(t, st.Popped)
	st = q.Answer('C')
	require.Equal(t, RowClear, st.Row)
	require.False(t, st.Popped, "readClear retires it")
	require.Equal(t, 1, q.Len())
	requireCounts(t, q)
}

// TestRespQueueDescribeShape: the answers to a client's Describe of a statement are
// reported for pgmux to learn its shape (ParameterDescription read, NoData or
// RowDescription ending it); a portal's Describe, a retried one's hidden
// ParameterDescription and a Describe of no statement of the client's are not.
func TestRespQueueDescribeShape(t *testing.T) {
	q := &Queue[stmt, fix, drop]{}
	def := &stmt{name: "s"}
	q.Push(&expect{Kind: 'D', Def: def})
	q.Push(&expect{Kind: 'D', Def: def})
	q.Push(&expect{Kind: 'D'})
	q.Push(&expect{Kind: 'D', Def: def, ParamsSent: true})
	for i, step := range []struct {
		typ   byte
		row   int
		shape bool
		def   *stmt
	}{
		{'t', RowParams, false, def}, {'n', 0, true, def},
		{'t', RowParams, false, def}, {'T', 0, true, def},
		{'t', 0, false, nil}, {'n', 0, false, nil},
		{'t', 0, false, def}, {'T', 0, true, def},
	} {
		st := q.Answer(step.typ)
		require.Equal(t, step.row, st.Row, "%d %q", i, step.typ)
		require.Equal(t, step.shape, st.Shape, "%d %q", i, step.typ)
		require.Same(t, step.def, st.Head.Def, "%d %q", i, step.typ)
	}
	require.Zero(t, q.Len())
}

// TestRespQueueSkippedReported: the requests an error or a ReadyForQuery retires
// unanswered are handed to the caller, first marked.
func TestRespQueueSkippedReported(t *testing.T) {
	q := &Queue[stmt, fix, drop]{}
	for _, k := range "PBDES" {
		q.Push(&expect{Kind: byte(k)})
	}
	q.Answer('1')
	var got []string
	require.True(t, q.SkipToSync(func(e expect, first bool) { got = append(got, fmt.Sprintf("%c%v", e.Kind, first)) }))
	require.Equal(t, []string{"Btrue", "Dfalse", "Efalse"}, got)
	got = got[:0]
	q.Push(&expect{Kind: 'P'})
	q.Push(&expect{Kind: 'Q'})
	require.Equal(t, byte('S'), q.RetireReady(func(e expect) { got = append(got, string(e.Kind)) }).Kind)
	require.Empty(t, got)
	require.Equal(t, byte('Q'), q.RetireReady(func(e expect) { got = append(got, string(e.Kind)) }).Kind)
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
		run, b, q := driveLink(t, rs, serverAnswers(rs))
		require.Zero(t, run.left, "requests left after the final Sync's ReadyForQuery")
		require.True(t, b.Quiet(q), "the link owes nothing after the final Sync's ReadyForQuery: pending %d, unsynced %v, %d queued", b.Pending, b.Unsynced, q.Len())
		require.False(t, b.ErrSkip, "no skip outlives the final Sync")
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
// client's CopyData, CopyDone and CopyFail are no requests (proxy's Session.account queues
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

// TestAnswerPlainAgreesWithAnswer: for every request kind, server message and kind of
// oldest request (plain, or carrying each of the marks Answer acts on), AnswerPlain either
// leaves the queue as it was (not handled), or does what Answer does and Answer would
// report nothing else: not hidden, no row read, nothing confirmed or learned.
func TestAnswerPlainAgreesWithAnswer(t *testing.T) {
	marks := map[string]func(e *expect){
		"plain":      func(*expect) {},
		"hide":       func(e *expect) { e.Hide = true },
		"check":      func(e *expect) { e.Check = true },
		"sync":       func(e *expect) { e.Setting = SetSync },
		"read":       func(e *expect) { e.Setting = SetRead },
		"clear":      func(e *expect) { e.Clear = 1 },
		"hidecc":     func(e *expect) { e.HideCC = 1 },
		"prep":       func(e *expect) { e.Prep = 1; e.Stmt = "s1" },
		"reg":        func(e *expect) { e.Reg = &stmt{name: "a"} },
		"def":        func(e *expect) { e.Def = &stmt{name: "a"} },
		"paramssent": func(e *expect) { e.ParamsSent = true },
		"fake":       func(e *expect) { e.Fake = true },
	}
	handledPlain := 0
	for name, mark := range marks {
		for _, kind := range []byte("PBDECSQFH") {
			for _, typ := range []byte("123ntTCIsDZEAN") {
				head := expect{Kind: kind, Seq: 7}
				mark(&head)
				var a, b Queue[stmt, fix, drop]
				for _, q := range []*Queue[stmt, fix, drop]{&a, &b} {
					h := head
					q.Push(&h)
					q.Push(&expect{Kind: 'S'})
				}
				what := fmt.Sprintf("%s %c answered by %c", name, kind, typ)
				handled, popped := a.AnswerPlain(typ)
				if !handled {
					require.False(t, popped, what)
					require.Equal(t, b, a, "%s: not handled, the queue is as it was", what)
					continue
				}
				if name == "plain" {
					handledPlain++
				}
				st := b.Answer(typ)
				require.Equal(t, st.Popped, popped, what)
				require.False(t, st.Hide, what)
				require.Zero(t, st.Row, what)
				require.False(t, st.Prepared || st.Synced || st.Checked || st.Shape, what)
				require.Equal(t, b, a, "%s: the queue as Answer leaves it", what)
				requireCounts(t, &a)
			}
		}
	}
	// A plain request's answers are handled here: each kind's by the 8 types AnswerPlain
	// takes.
	require.Equal(t, 9*8, handledPlain)
	var q Queue[stmt, fix, drop]
	q.Push(&expect{Kind: 'E'})
	handled, popped := q.AnswerPlain('C')
	require.True(t, handled && popped, "an Execute's CommandComplete completes it")
}
