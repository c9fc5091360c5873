// Package startup decodes the untyped first packet a client sends — SSLRequest,
// GSSENCRequest, CancelRequest or StartupMessage — and the `options` startup parameter.
// It decides nothing about what to answer.
package startup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/pgmux/pgmux/protocol/wire"
)

// Kind names the first packet's purpose.
type Kind int

const (
	KindStartup Kind = iota
	KindSSLRequest
	KindGSSENCRequest
	KindCancel
)

func (k Kind) String() string {
	switch k {
	case KindStartup:
		return "StartupMessage"
	case KindSSLRequest:
		return "SSLRequest"
	case KindGSSENCRequest:
		return "GSSENCRequest"
	case KindCancel:
		return "CancelRequest"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

const (
	codeSSL    = 80877103
	codeGSSENC = 80877104
	codeCancel = 80877102
)

// MaxPacket is the largest startup packet accepted, as in PostgreSQL.
const MaxPacket = 10000

// MaxParams bounds the number of startup parameters.
const MaxParams = 64

var (
	// ErrTooLarge reports a startup packet above MaxPacket.
	ErrTooLarge = errors.New("invalid length of startup packet")
	// ErrMalformed reports a startup packet that does not parse.
	ErrMalformed = errors.New("invalid startup packet layout: expected terminator as last byte")
	// ErrTooManyParams reports more than MaxParams parameters.
	ErrTooManyParams = errors.New("too many startup parameters")
)

// Param is one startup parameter.
type Param struct{ Key, Value string }

// Packet is a decoded first packet.
type Packet struct {
	Kind         Kind
	Major, Minor int
	Params       []Param
	CancelPID    uint32
	CancelKey    []byte
}

// Get returns the value of a startup parameter.
func (p *Packet) Get(key string) (string, bool) {
	for _, kv := range p.Params {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Read reads one first packet from rd.
func Read(rd *wire.Reader) (*Packet, error) {
	var hdr [4]byte
	if err := rd.ReadFull(hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > MaxPacket {
		return nil, fmt.Errorf("%w: %d", ErrTooLarge, n)
	}
	// A usual startup packet fits the stack array (Parse copies what it keeps): no
	// allocation of the body a login.
	var small [512]byte
	var body []byte
	if n-4 <= len(small) {
		body = small[:n-4]
	} else {
		body = make([]byte, n-4)
	}
	if err := rd.ReadFull(body); err != nil {
		return nil, err
	}
	return Parse(body)
}

// Parse decodes a first packet's body (everything after the length word).
func Parse(body []byte) (*Packet, error) {
	if len(body) < 4 {
		return nil, ErrMalformed
	}
	code := binary.BigEndian.Uint32(body)
	rest := body[4:]
	switch code {
	case codeSSL:
		return &Packet{Kind: KindSSLRequest}, nil
	case codeGSSENC:
		return &Packet{Kind: KindGSSENCRequest}, nil
	case codeCancel:
		if len(rest) < 8 || len(rest) > 4+256 {
			return nil, ErrMalformed
		}
		return &Packet{Kind: KindCancel, CancelPID: binary.BigEndian.Uint32(rest), CancelKey: append([]byte(nil), rest[4:]...)}, nil
	}
	p := &Packet{Kind: KindStartup, Major: int(code >> 16), Minor: int(code & 0xffff)}
	if p.Major != 3 {
		return p, nil // the caller refuses the version with a clear error
	}
	// The keys and values are cut from one copy of the parameters, and the list is made
	// at its size: three allocations a login, where a string each and the list's growth
	// made a dozen.
	n := bytes.Count(rest, []byte{0}) / 2
	if n > MaxParams {
		n = MaxParams + 1 // (refused below, at the one too many)
	}
	text := string(rest)
	if n > 0 {
		p.Params = make([]Param, 0, n)
	}
	for {
		if len(text) == 0 {
			return nil, ErrMalformed
		}
		if text[0] == 0 {
			if len(text) != 1 {
				return nil, ErrMalformed
			}
			return p, nil
		}
		k, r, ok := strings.Cut(text, "\x00")
		if !ok {
			return nil, ErrMalformed
		}
		v, r, ok := strings.Cut(r, "\x00")
		if !ok {
			return nil, ErrMalformed
		}
		if len(p.Params) >= MaxParams {
			return nil, ErrTooManyParams
		}
		p.Params = append(p.Params, Param{Key: k, Value: v})
		text = r
	}
}

// ParseOptions splits the `options` startup parameter the way PostgreSQL does: words
// separated by spaces (a backslash escapes the next character), where `-c key=value`,
// `-ckey=value` and `--key=value` set run-time parameters. Other switches are errors.
func ParseOptions(opts string) ([]Param, error) {
	words := splitWords(opts)
	var out []Param
	for i := 0; i < len(words); i++ {
		w := words[i]
		var kv string
		switch {
		case w == "-c":
			if i+1 >= len(words) {
				return nil, fmt.Errorf("option -c needs key=value")
			}
			i++
			kv = words[i]
		case strings.HasPrefix(w, "-c"):
			kv = w[2:]
		case strings.HasPrefix(w, "--"):
			kv = w[2:]
		default:
			return nil, fmt.Errorf("unsupported startup option %q (only -c key=value is supported)", w)
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid startup option %q: expected key=value", kv)
		}
		out = append(out, Param{Key: strings.ToLower(strings.ReplaceAll(k, "-", "_")), Value: v})
	}
	return out, nil
}

func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// NegotiateProtocolVersion appends the message telling a client that asked for a newer
// 3.x minor version which minor version and which _pq_ options are supported. Like
// PostgreSQL, it sends the newest version as a whole version word (3<<16 | minor), which
// is how libpq reads it.
func NegotiateProtocolVersion(dst []byte, minor int, unsupported []string) []byte {
	dst, s := wire.Begin(dst, 'v')
	dst = wire.AppendInt32(dst, int32(3<<16|minor))
	dst = wire.AppendInt32(dst, int32(len(unsupported)))
	for _, u := range unsupported {
		dst = wire.AppendString(dst, u)
	}
	return wire.Finish(dst, s)
}
