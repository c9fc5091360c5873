package proxy

import "github.com/pgmux/pgmux/proxy/link"

// msgFields is the split of the client's latest Parse or Bind (link.Fields: where its
// statement name and query text, or its portal and statement name, end): the loop's
// look at the message (loopable) splits it, and dispatch's looks after it (deferLocal,
// stickyNeed, the rewrite) read the split here instead of searching the bytes again,
// three or four times for each Parse and Bind of a transaction.
//
// A split is offsets, not views: a queued request's bytes may move to a small buffer
// before its rewrite (loopLease), and each look applies the split to its own view. The
// key is the reader's count of the message (wire.Reader.Seq, which counts each message
// once, whatever reads it) and the body's length, so a split is never applied to
// another message; a new reader's count starts again, and the memo is dropped with it
// (newReader, dispatchOwn). It lives in loopWork, the loop's state of the client:
// sessionWork has no room left in its size class, and a client no loop serves (TLS)
// has no loopWork and splits at each look, as before.
type msgFields struct {
	seq   uint64 // the message's count; 0: nothing kept
	size  uint32 // its body's length (at most 1 GiB: wire.Reader's bound)
	split link.Fields
}

// fieldsOf is link.SplitFields(body) for the client's Parse or Bind that the reader
// counts as message seq, found once per message for a client the loop serves
// (msgFields). seq is s.rd.Seq() for the message Next returned last, s.rd.Seq()+1 for
// the loop's look at the next one before Next.
func (s *Session) fieldsOf(body []byte, seq uint64) link.Fields {
	w := s.lw
	if w == nil {
		return link.SplitFields(body)
	}
	if w.fields.seq != seq || w.fields.size != uint32(len(body)) {
		if testHookSplit != nil {
			testHookSplit()
		}
		w.fields = msgFields{seq: seq, size: uint32(len(body)), split: link.SplitFields(body)}
	}
	return w.fields.split
}

// testHookSplit, when a test sets it, is told of each split fieldsOf makes for a client
// the loop serves (a split the memo does not answer).
var testHookSplit func()

// forgetFields drops the memo of a reader that is replaced: the next one counts from 0.
func (s *Session) forgetFields() {
	if s.lw != nil {
		s.lw.fields = msgFields{}
	}
}
