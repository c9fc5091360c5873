package main

// The protocol core every driver shares. No I/O, no locks: it looks at bytes a driver has
// read and says how many of them to forward and what to do next. Messages are framed by
// their 5-byte header (type, int32 length) and forwarded raw; nothing is decoded but the
// first packet, Terminate and ReadyForQuery's status byte.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

const (
	codeSSLRequest    = 80877103
	codeGSSEncRequest = 80877104
	codeCancelRequest = 80877102
	codeProtocol3     = 196608

	maxStartupLen = 10000
	// maxMessageLen bounds one message; a driver holding a partial message grows its
	// buffer to at most this much.
	maxMessageLen = 1 << 24
)

var errProtocol = errors.New("protocol violation")

// firstPacket is what a client's first packet asks for.
type firstPacket int

const (
	fpIncomplete firstPacket = iota // not all of it has arrived yet
	fpEncryption                    // SSLRequest or GSSENCRequest: answer 'N', read the next packet
	fpStartup                       // StartupMessage v3: answer with the greeting
	fpCancel                        // CancelRequest: not relayed in this eval, close
)

func (f firstPacket) String() string {
	switch f {
	case fpIncomplete:
		return "incomplete"
	case fpEncryption:
		return "encryption-request"
	case fpStartup:
		return "startup"
	case fpCancel:
		return "cancel"
	}
	return fmt.Sprintf("firstPacket(%d)", int(f))
}

// parseFirst looks at the start of b, where a packet without a type byte begins. It
// returns the packet's kind and its length (0 while incomplete).
func parseFirst(b []byte) (firstPacket, int, error) {
	if len(b) < 8 {
		return fpIncomplete, 0, nil
	}
	n := int(binary.BigEndian.Uint32(b))
	if n < 8 || n > maxStartupLen {
		return 0, 0, fmt.Errorf("%w: startup packet length %d", errProtocol, n)
	}
	if len(b) < n {
		return fpIncomplete, 0, nil
	}
	switch code := binary.BigEndian.Uint32(b[4:]); code {
	case codeSSLRequest, codeGSSEncRequest:
		return fpEncryption, n, nil
	case codeCancelRequest:
		return fpCancel, n, nil
	case codeProtocol3:
		return fpStartup, n, nil
	default:
		return 0, 0, fmt.Errorf("%w: unsupported protocol code %d", errProtocol, code)
	}
}

// greeting is the relay's answer to a StartupMessage: AuthenticationOk, the first server
// connection's ParameterStatus messages, then per client BackendKeyData and ReadyForQuery.
type greeting struct {
	head []byte // AuthenticationOk and ParameterStatus
}

func newGreeting(params map[string]string) greeting {
	b := []byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = append(b, 'S', 0, 0, 0, 0)
		start := len(b) - 4
		b = append(b, k...)
		b = append(b, 0)
		b = append(b, params[k]...)
		b = append(b, 0)
		binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	}
	return greeting{head: b}
}

// appendTo appends the greeting for the client numbered id to dst.
func (g greeting) appendTo(dst []byte, id uint32) []byte {
	dst = append(dst, g.head...)
	dst = append(dst, 'K', 0, 0, 0, 12)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, id*2654435761)
	return append(dst, 'Z', 0, 0, 0, 5, 'I')
}

// errorResponse is a FATAL ErrorResponse with SQLSTATE 08P01 (protocol violation).
func errorResponse(msg string) []byte {
	b := []byte{'E', 0, 0, 0, 0}
	b = append(b, 'S')
	b = append(b, "FATAL"...)
	b = append(b, 0, 'V')
	b = append(b, "FATAL"...)
	b = append(b, 0, 'C')
	b = append(b, "08P01"...)
	b = append(b, 0, 'M')
	b = append(b, msg...)
	b = append(b, 0, 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// sslRefused is the answer to SSLRequest / GSSENCRequest: no encryption.
var sslRefused = []byte{'N'}

// link is the protocol state of one client: how many answers ending in ReadyForQuery the
// server still owes (one per Query and per Sync forwarded), and whether messages of a
// request without its Sync yet were forwarded (open: the client has begun its next
// extended-protocol request before the last answer came). A server is released at the
// ReadyForQuery with status 'I' that settles the last answer owed when no request is open.
type link struct {
	owed int
	open bool
}

// frame reads the header of the message at the start of rest, sent by side: n is its
// length field (the message takes n+1 bytes), or -1 when rest does not hold it whole;
// need is then the whole message's length when its header is there (0 when not).
func frame(rest []byte, side string) (n, need int, err error) {
	if len(rest) < 5 {
		return -1, 0, nil
	}
	n = int(binary.BigEndian.Uint32(rest[1:]))
	if n < 4 || n > maxMessageLen {
		return -1, 0, fmt.Errorf("%w: %s message %q length %d", errProtocol, side, rest[0], n)
	}
	if len(rest) < n+1 {
		return -1, n + 1, nil
	}
	return n, 0, nil
}

// scanClient walks the whole messages at the start of b, counting those that end in a
// ReadyForQuery (Query, Sync). It returns fwd, the bytes of whole messages to forward,
// and terminate when a Terminate ('X') came: fwd then stops before it and the client is to
// be closed. need is the length of the first incomplete message (0 when only its header is
// missing or b is consumed), so a driver can size its buffer.
func (l *link) scanClient(b []byte) (fwd int, terminate bool, need int, err error) {
	for {
		rest := b[fwd:]
		n, need, err := frame(rest, "client")
		if n < 0 || err != nil {
			return fwd, false, need, err
		}
		switch rest[0] {
		case 'X':
			return fwd, true, 0, nil
		case 'Q', 'S', 'F': // each answered up to a ReadyForQuery
			l.owed++
			l.open = false
		case 'P', 'B', 'D', 'E', 'C', 'H': // extended protocol: answered at the next Sync
			l.open = true
		}
		fwd += n + 1
	}
}

// scanServer walks the whole server messages at the start of b. It returns fwd, the bytes
// to forward to the client, and release when the last of them is the ReadyForQuery 'I'
// that settles every request: the server goes back to the pool and bytes after fwd are
// not the client's.
func (l *link) scanServer(b []byte) (fwd int, release bool, need int, err error) {
	for {
		rest := b[fwd:]
		n, need, err := frame(rest, "server")
		if n < 0 || err != nil {
			return fwd, false, need, err
		}
		fwd += n + 1
		if rest[0] == 'Z' && n == 5 {
			if l.owed > 0 {
				l.owed--
			}
			if l.owed == 0 && !l.open && rest[5] == 'I' {
				return fwd, true, 0, nil
			}
		}
	}
}

// handshake advances a client's first packets with the bytes in b: how many it consumed,
// out with the answers appended, and whether the client is now greeted (ready) or is to
// be closed once out is sent (quit).
func (g greeting) handshake(b []byte, id uint32, out []byte) (consumed int, _ []byte, ready, quit bool) {
	for {
		kind, n, err := parseFirst(b[consumed:])
		switch {
		case err != nil:
			return consumed, append(out, errorResponse(err.Error())...), false, true
		case kind == fpIncomplete:
			return consumed, out, false, false
		case kind == fpEncryption:
			consumed += n
			out = append(out, sslRefused...)
		case kind == fpCancel:
			return consumed + n, out, false, true
		default:
			return consumed + n, g.appendTo(out, id), true, false
		}
	}
}
