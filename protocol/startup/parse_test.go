package startup

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// referenceParams is the parameters' parse as written first (a string per key and value):
// the reference Parse must agree with.
func referenceParams(rest []byte) ([]Param, error) {
	var out []Param
	for {
		if len(rest) == 0 {
			return nil, ErrMalformed
		}
		if rest[0] == 0 {
			if len(rest) != 1 {
				return nil, ErrMalformed
			}
			return out, nil
		}
		k, r, err := wire.CString(rest)
		if err != nil {
			return nil, ErrMalformed
		}
		v, r, err := wire.CString(r)
		if err != nil {
			return nil, ErrMalformed
		}
		if len(out) >= MaxParams {
			return nil, ErrTooManyParams
		}
		out = append(out, Param{Key: string(k), Value: string(v)})
		rest = r
	}
}

func startupBody(params string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 3<<16)
	return append(b, params...)
}

// TestParseStartupParams: the parameters of a startup packet, and the malformed ones.
func TestParseStartupParams(t *testing.T) {
	many := ""
	for range MaxParams + 1 {
		many += "k\x00v\x00"
	}
	for _, tc := range []struct {
		name, params string
		want         []Param
		err          error
	}{
		{"two", "user\x00app\x00database\x00db\x00\x00", []Param{{"user", "app"}, {"database", "db"}}, nil},
		{"empty value", "user\x00app\x00options\x00\x00\x00", []Param{{"user", "app"}, {"options", ""}}, nil},
		{"none", "\x00", nil, nil},
		{"no terminator", "user\x00app\x00", nil, ErrMalformed},
		{"key without value", "user\x00app\x00database\x00", nil, ErrMalformed},
		{"bytes after the terminator", "user\x00app\x00\x00x", nil, ErrMalformed},
		{"nothing", "", nil, ErrMalformed},
		{"too many", many + "\x00", nil, ErrTooManyParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(startupBody(tc.params))
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Nil(t, p)
				return
			}
			require.NoError(t, err)
			require.Equal(t, KindStartup, p.Kind)
			require.Equal(t, tc.want, p.Params)
		})
	}
}

// TestParseStartupAllocations: a login's startup packet costs three allocations (the
// packet, the list, one copy of the text), whatever its number of parameters.
func TestParseStartupAllocations(t *testing.T) {
	body := startupBody("user\x00app\x00database\x00db\x00application_name\x00psql\x00client_encoding\x00UTF8\x00\x00")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(body); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 3.0)
}

// FuzzParseParams: Parse's parameters are the reference parse's, error for error.
func FuzzParseParams(f *testing.F) {
	f.Add([]byte("user\x00app\x00database\x00app\x00\x00"))
	f.Add([]byte("user\x00app\x00"))
	f.Add([]byte("\x00"))
	f.Add([]byte("a\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, params []byte) {
		want, werr := referenceParams(params)
		p, err := Parse(startupBody(string(params)))
		if werr != nil {
			require.ErrorIs(t, err, werr)
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, p.Params)
	})
}

// repeating is a source that sends its packet over and over.
type repeating struct {
	pkt []byte
	off int
}

func (r *repeating) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pkt[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pkt)
	}
	return n, nil
}

// TestReadStartupAllocations: reading a usual startup packet adds no allocation to
// Parse's three (its body is read into a stack array).
func TestReadStartupAllocations(t *testing.T) {
	body := startupBody("user\x00app\x00database\x00db\x00application_name\x00psql\x00client_encoding\x00UTF8\x00\x00")
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	rd := wire.NewReader(&repeating{pkt: append(pkt, body...)})
	allocs := testing.AllocsPerRun(100, func() {
		p, err := Read(rd)
		if err != nil || len(p.Params) != 4 {
			t.Fatal(p, err)
		}
	})
	require.LessOrEqual(t, allocs, 3.0)
}
