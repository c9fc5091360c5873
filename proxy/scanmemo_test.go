package proxy

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// pastFirst consumes the reader's first message, which reads in what follows it, and
// returns the body length of the next, a whole one of type typ not counted yet.
func pastFirst(t *testing.T, rd *wire.Reader, typ byte) int {
	t.Helper()
	_, n, err := rd.Next()
	require.NoError(t, err)
	_, err = rd.Message(n)
	require.NoError(t, err)
	next, n, whole := rd.Whole()
	require.True(t, whole)
	require.Equal(t, typ, next)
	return n
}

// oneAtATime yields one message per Read, so every message is read into a buffer of its
// own, most often the same pooled buffer at the same address.
type oneAtATime struct{ msgs [][]byte }

func (r *oneAtATime) Read(p []byte) (int, error) {
	if len(r.msgs) == 0 {
		return 0, nil
	}
	n := copy(p, r.msgs[0])
	if r.msgs[0] = r.msgs[0][n:]; len(r.msgs[0]) == 0 {
		r.msgs = r.msgs[1:]
	}
	return n, nil
}

// The memo answers for the message being handled only: texts of the same length at the
// same address in later messages are scanned again, and looking at one text several
// times in one message scans it once.
func TestScanMemoFollowsMessages(t *testing.T) {
	texts := []string{"select 1;", "listen x;", "select 2;", "begin   ;", "select 3;"}
	want := []bool{false, true, false, true, false}
	src := &oneAtATime{}
	for _, q := range texts {
		src.msgs = append(src.msgs, wire.Query(nil, q))
	}
	s := &Session{rd: wire.NewReader(src), sessionWork: newWork()}
	addrs := map[uintptr]bool{}
	for i := range texts {
		typ, n, err := s.rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('Q'), typ)
		m, err := s.rd.Peek(n)
		require.NoError(t, err)
		text, _, err := wire.CString(wire.Body(m))
		require.NoError(t, err)
		q := unsafe.String(&text[0], len(text))
		addrs[uintptr(unsafe.Pointer(&text[0]))] = true
		for range 3 {
			require.Equal(t, want[i], s.maybeInteresting(q), texts[i])
		}
		require.Equal(t, s.rd.Seq(), s.scan.seq)
		_, err = s.rd.Message(n)
		require.NoError(t, err)
		s.rd.Release()
	}
	t.Logf("%d distinct text addresses over %d messages", len(addrs), len(texts))
}

// The client loop looks at a request before Next counts it (loopable), then dispatches
// it; a request queued for a server has its bytes moved to a small buffer
// (wire.Reader.Shrink) and is dispatched again once it is handed one. The text is scanned
// once through all of that, and a text of the same length elsewhere is scanned.
func TestScanMemoFollowsTheLoop(t *testing.T) {
	src := bytes.NewReader(wire.Query(wire.Query(nil, "select 1;"), "listen x;"))
	s := &Session{rd: wire.NewReader(src), sessionWork: newWork()}
	n := pastFirst(t, s.rd, 'Q') // the request before: both are buffered after it
	view := func() string {
		m, err := s.rd.Peek(n)
		require.NoError(t, err)
		text, _, err := wire.CString(wire.Body(m))
		require.NoError(t, err)
		return unsafe.String(&text[0], len(text))
	}
	require.True(t, s.leadAt(view(), s.rd.Seq()+1).Interesting) // loopable's look
	s.scan.lead.Interesting = false                             // what the memo answers from now on, if it answers
	_, _, err := s.rd.Next()
	require.NoError(t, err)
	q := view()
	require.False(t, s.maybeInteresting(q), "dispatch is answered by the memo")

	before := uintptr(unsafe.Pointer(unsafe.StringData(q)))
	s.rd.Shrink()
	q = view()
	require.NotEqual(t, before, uintptr(unsafe.Pointer(unsafe.StringData(q))), "Shrink moved the bytes")
	require.False(t, s.maybeInteresting(q), "the moved text is answered by the memo")
	other := string([]byte("listen x;"))
	require.True(t, s.maybeInteresting(other), "a text outside the reader's bytes is scanned")
}

// The relay looks at a message's text before it takes the message (stickyNeed, on a
// Peek) and again after (forwardQuery, rewriteParse, on the view Message returned): one
// scan. Before the key counted from the message's start (wire.Reader.Current), the
// second look missed and scanned the text again, once per transaction.
func TestScanMemoAcrossConsume(t *testing.T) {
	src := bytes.NewReader(wire.Query(wire.Query(nil, "select 1;"), "listen x;"))
	s := &Session{rd: wire.NewReader(src), sessionWork: newWork()}
	_, n, err := s.rd.Next()
	require.NoError(t, err)
	_, err = s.rd.Message(n)
	require.NoError(t, err)
	_, n, err = s.rd.Next()
	require.NoError(t, err)
	text := func(m []byte) string {
		b, _, err := wire.CString(wire.Body(m))
		require.NoError(t, err)
		return unsafe.String(&b[0], len(b))
	}
	m, err := s.rd.Peek(n)
	require.NoError(t, err)
	require.True(t, s.maybeInteresting(text(m)))
	s.scan.lead.Interesting = false // what the memo answers from now on, if it answers
	m, err = s.rd.Message(n)
	require.NoError(t, err)
	require.False(t, s.maybeInteresting(text(m)), "the consumed message's text is answered by the memo")
	// A text of the same length at the same offset of the next message is scanned.
	s.rd = wire.NewReader(bytes.NewReader(wire.Query(nil, "listen y;")))
	_, n, err = s.rd.Next()
	require.NoError(t, err)
	m, err = s.rd.Message(n)
	require.NoError(t, err)
	require.True(t, s.maybeInteresting(text(m)), "another message's text is scanned")
}

// The client loop keeps the Lead of the client's latest Parse text (parseLead): the same
// text in a later Parse is not scanned again, and any other text, of the same length
// too, is; the answer also goes to the message memo, for dispatch's looks.
func TestParseLeadAcrossRequests(t *testing.T) {
	texts := []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
		"SELECT pg_advisory_lock($1)", // same length as the next, which pins nothing
		"SELECT pg_advisory_xxxx($1)",
		"SELECT pg_advisory_lock($1)",
		"BEGIN",
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
	}
	src := &oneAtATime{}
	for _, q := range texts {
		src.msgs = append(src.msgs, link.AppendParse(nil, "", q, nil))
	}
	s := &Session{rd: wire.NewReader(src), sessionWork: newWork()}
	s.lw = &loopWork{}
	for i, q := range texts {
		typ, n, err := s.rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('P'), typ)
		m, err := s.rd.Peek(n)
		require.NoError(t, err)
		_, query, _, ok := link.ParseFields(wire.Body(m))
		require.True(t, ok)
		view := unsafe.String(&query[0], len(query))
		require.Equal(t, q, view)
		got := s.parseLead(view, s.rd.Seq())
		require.Equal(t, sqlscan.LeadOf(q), got, "text %d: %s", i, q)
		require.Equal(t, q, string(s.lw.parse.text), "the text kept for the next Parse")
		require.Equal(t, got, s.lead(view), "dispatch finds the loop's answer")
		_, err = s.rd.Message(n)
		require.NoError(t, err)
		s.rd.Release()
	}
	require.NotEqual(t, sqlscan.LeadOf(texts[2]), sqlscan.LeadOf(texts[3]), "the same-length texts differ in what they lead with")
}
