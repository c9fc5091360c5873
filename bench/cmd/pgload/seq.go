package main

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// maxSeq bounds the sequence numbers a seqCheck stores; a larger one is unexpected.
const maxSeq = 1 << 24

// seqCheck checks one stream of sequence numbers (one notifier's notifications on one
// channel, as one listener saw them) that should arrive as 0, 1, 2, ... exactly once each.
// The zero value is ready.
type seqCheck struct {
	seen       []uint64 // bitset of the sequence numbers received
	high       int      // highest sequence number received, when started
	started    bool     // something in range was received
	distinct   int
	duplicate  int
	outOfOrder int
	unexpected int // out of range: negative or at least maxSeq
}

// add records the arrival of seq.
func (c *seqCheck) add(seq int) {
	if seq < 0 || seq >= maxSeq {
		c.unexpected++
		return
	}
	word, bit := seq/64, uint(seq%64)
	if word >= len(c.seen) {
		c.seen = append(c.seen, make([]uint64, word+1-len(c.seen))...)
	}
	if c.seen[word]&(1<<bit) != 0 {
		c.duplicate++
		return
	}
	c.seen[word] |= 1 << bit
	c.distinct++
	if c.started && seq < c.high {
		c.outOfOrder++
		return
	}
	c.high, c.started = seq, true
}

// seqResult counts what went wrong in one or more streams.
type seqResult struct {
	Received   int // distinct sequence numbers received, expected or not
	Missing    int // below the expected count and never received
	Duplicate  int // received again
	OutOfOrder int // received after a higher one
	Unexpected int // at or above the expected count, or out of range
}

// result compares the stream with the expected count: 0 .. expected-1 should all be there.
func (c *seqCheck) result(expected int) seqResult {
	r := seqResult{Received: c.distinct, Duplicate: c.duplicate, OutOfOrder: c.outOfOrder,
		Unexpected: c.unexpected}
	have := 0
	for w, word := range c.seen {
		switch lo := w * 64; {
		case lo+64 <= expected:
			have += bits.OnesCount64(word)
		case lo < expected:
			have += bits.OnesCount64(word & (1<<uint(expected-lo) - 1))
		}
	}
	r.Missing = max(expected, 0) - have
	r.Unexpected += c.distinct - have
	return r
}

// add sums o into r.
func (r *seqResult) add(o seqResult) {
	r.Received += o.Received
	r.Missing += o.Missing
	r.Duplicate += o.Duplicate
	r.OutOfOrder += o.OutOfOrder
	r.Unexpected += o.Unexpected
}

// bad is the number of problems found.
func (r seqResult) bad() int { return r.Missing + r.Duplicate + r.OutOfOrder + r.Unexpected }

// A payload is what a notification carries: "notifier:seq:unixnano" for a numbered one,
// "notifier:end" for the last one a notifier sends on a channel.
type payload struct {
	notifier int
	seq      int
	sent     time.Time
	end      bool
}

// formatPayload renders a numbered payload sent at t.
func formatPayload(notifier, seq int, t time.Time) string {
	return strconv.Itoa(notifier) + ":" + strconv.Itoa(seq) + ":" + strconv.FormatInt(t.UnixNano(), 10)
}

// endPayload renders the end marker of a notifier.
func endPayload(notifier int) string { return strconv.Itoa(notifier) + ":end" }

// parsePayload reads a payload written by formatPayload or endPayload.
func parsePayload(s string) (payload, error) {
	parts := strings.Split(s, ":")
	var p payload
	var err error
	if p.notifier, err = strconv.Atoi(parts[0]); err != nil || p.notifier < 0 {
		return p, fmt.Errorf("bad payload %q: notifier", s)
	}
	if len(parts) == 2 && parts[1] == "end" {
		p.end = true
		return p, nil
	}
	if len(parts) != 3 {
		return p, fmt.Errorf("bad payload %q: want notifier:seq:unixnano or notifier:end", s)
	}
	if p.seq, err = strconv.Atoi(parts[1]); err != nil {
		return p, fmt.Errorf("bad payload %q: seq", s)
	}
	ns, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return p, fmt.Errorf("bad payload %q: time", s)
	}
	p.sent = time.Unix(0, ns)
	return p, nil
}
