package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// ErrMalformed is returned when a message body does not parse.
var ErrMalformed = errors.New("malformed message")

// Body returns the body of a whole message as returned by Message.
func Body(msg []byte) []byte { return msg[HeaderLen:] }

// CString splits a NUL-terminated string off the front of b.
func CString(b []byte) (s []byte, rest []byte, err error) {
	if len(b) > 0 && b[0] == 0 {
		// The empty string: the unnamed statement or portal of most extended-protocol
		// messages, several a transaction; no call into the byte search for it.
		return b[:0], b[1:], nil
	}
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, ErrMalformed
	}
	return b[:i], b[i+1:], nil
}

// Int32 splits a big-endian int32 off the front of b.
func Int32(b []byte) (int32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, ErrMalformed
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

// Int16 splits a big-endian int16 off the front of b.
func Int16(b []byte) (int16, []byte, error) {
	if len(b) < 2 {
		return 0, nil, ErrMalformed
	}
	return int16(binary.BigEndian.Uint16(b)), b[2:], nil
}

// ParseParameterStatus returns the name and value of a ParameterStatus body.
func ParseParameterStatus(body []byte) (name, value []byte, err error) {
	name, rest, err := CString(body)
	if err != nil {
		return nil, nil, err
	}
	value, _, err = CString(rest)
	return name, value, err
}

// Fields parses an ErrorResponse or NoticeResponse body into its typed fields, calling fn
// for each; it stops at the terminator.
func Fields(body []byte, fn func(code byte, value []byte)) error {
	for len(body) > 0 {
		code := body[0]
		if code == 0 {
			return nil
		}
		v, rest, err := CString(body[1:])
		if err != nil {
			return err
		}
		fn(code, v)
		body = rest
	}
	return ErrMalformed
}
