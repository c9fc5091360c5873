package link

// The client's Parse of an unnamed statement served from the server's statement cache
// (cache_unnamed_statements; proxy/unnamed.go): which texts are admitted to the cache,
// and how a Parse the server already has is answered.

// SketchSize is the number of slots of a server's admission sketch.
const SketchSize = 1024

// Sketch remembers the keys of the unnamed statements parsed lately on one server. A
// text is prepared under pgmux's name only at its second sighting there, so texts with
// inlined literals, each seen once, never enter the cache and never evict a hot
// statement. A slot holds the last key that hashed to it: a one-off text overwrites at
// most one other one-off's slot.
type Sketch [SketchSize]uint64

// Seen reports whether key was recorded, recording it otherwise.
func (k *Sketch) Seen(key uint64) bool {
	i := key % SketchSize
	if k[i] == key {
		return true
	}
	k[i] = key
	return false
}

// ParseAnswer is how a client's Parse of a statement the server already has is answered.
type ParseAnswer uint8

const (
	// ParseIgnored: an earlier error of the request makes PostgreSQL skip it: nothing.
	ParseIgnored ParseAnswer = iota
	// ParseStub: a request still unanswered may leave the transaction failed, where
	// PostgreSQL answers a Parse with 25P02: the server gets a Parse of a statement that
	// needs no analysis as the unnamed one, and answers as it would the client's.
	ParseStub
	// ParseQueued: pgmux's own ParseComplete, written when the answers queued before it
	// have been (a Fake request).
	ParseQueued
	// ParseNow: nothing is outstanding: pgmux's ParseComplete goes out now.
	ParseNow
)

// AnswerParse decides ParseAnswer from the link's state: errSkip, the server skips to
// the next Sync after an error; pending, the requests (Syncs, Queries) not yet answered
// with a ReadyForQuery; queued, the answers still expected.
func AnswerParse(errSkip bool, pending, queued int) ParseAnswer {
	switch {
	case errSkip:
		return ParseIgnored
	case pending > 0:
		return ParseStub
	case queued > 0:
		return ParseQueued
	}
	return ParseNow
}
