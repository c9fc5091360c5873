package wire

import "encoding/binary"

// Begin appends a message header of type typ with a placeholder length and returns the
// extended slice and the header's offset, to be passed to Finish.
func Begin(dst []byte, typ byte) ([]byte, int) {
	start := len(dst)
	return append(dst, typ, 0, 0, 0, 0), start
}

// Finish writes the message length for the message begun at start.
func Finish(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// AppendString appends s and its terminating NUL.
func AppendString(dst []byte, s string) []byte { return append(append(dst, s...), 0) }

// AppendInt32 appends v big-endian.
func AppendInt32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }

// AppendInt16 appends v big-endian.
func AppendInt16(dst []byte, v int16) []byte { return binary.BigEndian.AppendUint16(dst, uint16(v)) }

// ReadyForQuery appends a ReadyForQuery message with the given transaction status.
func ReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, 'Z', 0, 0, 0, 5, status)
}

// CommandComplete appends a CommandComplete message with the given tag.
func CommandComplete(dst []byte, tag string) []byte {
	dst, s := Begin(dst, 'C')
	dst = AppendString(dst, tag)
	return Finish(dst, s)
}

// ParameterStatus appends a ParameterStatus message.
func ParameterStatus(dst []byte, name, value string) []byte {
	dst, s := Begin(dst, 'S')
	dst = AppendString(dst, name)
	dst = AppendString(dst, value)
	return Finish(dst, s)
}

// BackendKeyData appends a BackendKeyData message.
func BackendKeyData(dst []byte, pid, key uint32) []byte {
	dst, s := Begin(dst, 'K')
	dst = binary.BigEndian.AppendUint32(dst, pid)
	dst = binary.BigEndian.AppendUint32(dst, key)
	return Finish(dst, s)
}

// Auth appends an Authentication message with the given code and payload.
func Auth(dst []byte, code int32, payload []byte) []byte {
	dst, s := Begin(dst, 'R')
	dst = AppendInt32(dst, code)
	dst = append(dst, payload...)
	return Finish(dst, s)
}

// Query appends a simple Query message.
func Query(dst []byte, sql string) []byte {
	dst, s := Begin(dst, 'Q')
	dst = AppendString(dst, sql)
	return Finish(dst, s)
}

// Authentication request codes.
const (
	AuthOK           = 0
	AuthCleartext    = 3
	AuthMD5          = 5
	AuthSASL         = 10
	AuthSASLContinue = 11
	AuthSASLFinal    = 12
)
