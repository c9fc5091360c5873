package console

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/pgmux/pgmux/protocol/wire"
)

// Type OIDs of the admin console's result columns, as PostgreSQL numbers them.
const (
	oidBytea = 17
	oidInt8  = 20
	oidInt4  = 23
	oidText  = 25
)

// Column is one column of a console result set.
type Column struct {
	name string
	oid  uint32
}

// Text is a column of type text.
func Text(name string) Column { return Column{name, oidText} }

// Int4 is a column of type int4.
func Int4(name string) Column { return Column{name, oidInt4} }

// Int8 is a column of type int8.
func Int8(name string) Column { return Column{name, oidInt8} }

// Bytea is a column of type bytea; its values are only ever NULL (SHOW FDS' keys, which
// pgmux never shows).
func Bytea(name string) Column { return Column{name, oidBytea} }

// Result builds one SHOW answer in text format: RowDescription, DataRows, then
// CommandComplete. Values are strings, integers, durations (as microseconds), bools (as 0/1)
// or nil for NULL.
type Result struct {
	cols []Column
	buf  []byte
}

// NewResult starts a result set, appending its RowDescription to dst.
func NewResult(dst []byte, cols ...Column) *Result {
	b, start := wire.Begin(dst, 'T')
	b = wire.AppendInt16(b, int16(len(cols)))
	for _, c := range cols {
		b = wire.AppendString(b, c.name)
		b = wire.AppendInt32(b, 0) // table OID
		b = wire.AppendInt16(b, 0) // attribute number
		b = wire.AppendInt32(b, int32(c.oid))
		b = wire.AppendInt16(b, typeSize(c.oid))
		b = wire.AppendInt32(b, -1) // type modifier
		b = wire.AppendInt16(b, 0)  // text format
	}
	return &Result{cols: cols, buf: wire.Finish(b, start)}
}

func typeSize(oid uint32) int16 {
	switch oid {
	case oidInt4:
		return 4
	case oidInt8:
		return 8
	}
	return -1
}

// Row appends one DataRow; it panics when the values do not match the columns, which is a
// programming error the admin tests catch.
func (r *Result) Row(vals ...any) {
	if len(vals) != len(r.cols) {
		panic(fmt.Sprintf("admin result: %d values for %d columns", len(vals), len(r.cols)))
	}
	b, start := wire.Begin(r.buf, 'D')
	b = wire.AppendInt16(b, int16(len(vals)))
	for _, v := range vals {
		if v == nil {
			b = wire.AppendInt32(b, -1)
			continue
		}
		at := len(b)
		b = wire.AppendInt32(b, 0)
		b = appendValue(b, v)
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	r.buf = wire.Finish(b, start)
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return append(b, x...)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case time.Duration:
		return strconv.AppendInt(b, x.Microseconds(), 10)
	case bool:
		if x {
			return append(b, '1')
		}
		return append(b, '0')
	}
	panic(fmt.Sprintf("admin result: unsupported value type %T", v))
}

// Done appends CommandComplete with tag and returns the whole answer.
func (r *Result) Done(tag string) []byte {
	return wire.CommandComplete(r.buf, tag)
}

// Notice appends a NoticeResponse with severity NOTICE, a message and a detail.
func Notice(dst []byte, msg, detail string) []byte {
	b, start := wire.Begin(dst, 'N')
	for _, f := range [...]struct {
		code byte
		v    string
	}{{'S', "NOTICE"}, {'V', "NOTICE"}, {'C', "00000"}, {'M', msg}, {'D', detail}} {
		if f.v != "" {
			b = append(b, f.code)
			b = wire.AppendString(b, f.v)
		}
	}
	b = append(b, 0)
	return wire.Finish(b, start)
}
