package proxy

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// errFix makes an error the server raised for a message pgmux renamed read as the
// client's own: pgmux's statement name in the text becomes the client's, and an error
// position (P field, in characters from 1) past the renamed part moves back by the
// length it gained. Only the error path pays for it.
type errFix struct {
	from, to string // statement names as PostgreSQL quotes them in messages: "name"
	at       int    // positions beyond this one follow the renamed name
	delta    int    // characters the server's text has more than the client's there
	shifts   []posShift
}

// posShift is text pgmux added to a Query (link.ResetInPlace): positions beyond At, in
// the server's text, move back by Delta.
type posShift = link.PosShift

// positionFix returns the fix for a query the client wrote as orig[:start] + name token
// + orig[end:] and pgmux sent with server in place of the token.
func positionFix(orig string, start, end int, server string) (at, delta int) {
	at = utf8.RuneCountInString(orig[:start]) + len(server)
	return at, len(server) - utf8.RuneCountInString(orig[start:end])
}

// apply returns m (a whole ErrorResponse) rewritten; m itself is not changed.
func (f *errFix) apply(m []byte) []byte {
	if f == nil || len(m) < wire.HeaderLen+1 {
		return m
	}
	out, start := wire.Begin(make([]byte, 0, len(m)+len(f.to)), m[0])
	for b := m[wire.HeaderLen:]; len(b) > 0 && b[0] != 0; {
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			return m
		}
		code, val := b[0], b[1:1+end]
		b = b[2+end:]
		switch code {
		case 'M', 'D':
			if f.from != "" {
				val = bytes.ReplaceAll(val, []byte(`"`+f.from+`"`), []byte(`"`+f.to+`"`))
			}
		case 'P':
			if p, err := strconv.Atoi(string(val)); err == nil {
				np := p
				if f.delta != 0 && p > f.at {
					np -= f.delta
				}
				for _, sh := range f.shifts {
					if p > sh.At {
						np -= sh.Delta
					}
				}
				if np != p {
					val = strconv.AppendInt(nil, int64(max(1, np)), 10)
				}
			}
		}
		out = append(out, code)
		out = append(out, val...)
		out = append(out, 0)
	}
	out = append(out, 0)
	return wire.Finish(out, start)
}
