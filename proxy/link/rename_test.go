package link

import (
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// decodeOne splits the first message off b, checks its header, and returns its type,
// body and what follows it.
func decodeOne(t testing.TB, b []byte) (typ byte, body, rest []byte) {
	t.Helper()
	require.GreaterOrEqual(t, len(b), wire.HeaderLen)
	n := int(uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4]))
	require.GreaterOrEqual(t, n, 4)
	require.LessOrEqual(t, 1+n, len(b), "length field past the bytes")
	return b[0], b[wire.HeaderLen : 1+n], b[1+n:]
}

func TestRenameMessagesDecode(t *testing.T) {
	b := AppendNoop([]byte("kept"), "s1")
	b = AppendParse(b, "pgmux_x", "SELECT $1::int", []byte{0, 1, 0, 0, 0, 23})
	b = AppendParseAs(b, "", []byte("SELECT 1\x00\x00\x00"))
	b = AppendBindAs(b, []byte("p1"), "pgmux_x", []byte{0, 0, 0, 1, 0, 0, 0, 1, '7', 0, 0})
	b = AppendDescribeStmt(b, "pgmux_x")
	b = AppendRunUnnamed(b, "DO $$ BEGIN END $$")
	require.Equal(t, "kept", string(b[:4]), "appends: what dst held stays")
	rest := b[4:]

	var msgs []pgproto3.FrontendMessage
	for len(rest) > 0 {
		typ, body, r := decodeOne(t, rest)
		rest = r
		var m pgproto3.FrontendMessage
		switch typ {
		case 'C':
			m = &pgproto3.Close{}
		case 'P':
			m = &pgproto3.Parse{}
		case 'B':
			m = &pgproto3.Bind{}
		case 'D':
			m = &pgproto3.Describe{}
		case 'E':
			m = &pgproto3.Execute{}
		default:
			t.Fatalf("unexpected message type %q", typ)
		}
		require.NoError(t, m.Decode(body), "%q", typ)
		msgs = append(msgs, m)
	}
	require.Equal(t, []pgproto3.FrontendMessage{
		&pgproto3.Close{ObjectType: 'S', Name: "s1"},
		&pgproto3.Parse{Name: "s1", Query: ""},
		&pgproto3.Parse{Name: "pgmux_x", Query: "SELECT $1::int", ParameterOIDs: []uint32{23}},
		&pgproto3.Parse{Name: "", Query: "SELECT 1"},
		&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "pgmux_x",
			Parameters: [][]byte{[]byte("7")}, ResultFormatCodes: []int16{}},
		&pgproto3.Describe{ObjectType: 'S', Name: "pgmux_x"},
		&pgproto3.Parse{Name: "", Query: "DO $$ BEGIN END $$"},
		&pgproto3.Bind{ResultFormatCodes: []int16{}},
		&pgproto3.Execute{},
	}, msgs)
}

func TestFieldsRefuseTruncatedBodies(t *testing.T) {
	for _, body := range []string{"", "s", "s\x00SELECT 1"} {
		_, _, _, ok := ParseFields([]byte(body))
		require.False(t, ok, "Parse %q", body)
		_, _, _, ok = BindFields([]byte(body))
		require.False(t, ok, "Bind %q", body)
	}
	for _, body := range []string{"", "S", "Sname"} {
		_, _, ok := TargetFields([]byte(body))
		require.False(t, ok, "Describe %q", body)
	}
	name, query, types, ok := ParseFields([]byte("n\x00q\x00"))
	require.True(t, ok)
	require.Equal(t, []string{"n", "q", ""}, []string{string(name), string(query), string(types)},
		"a Parse without its type section is split as it is: the server refuses it")
	kind, tname, ok := TargetFields([]byte("P\x00"))
	require.True(t, ok)
	require.Equal(t, byte('P'), kind)
	require.Empty(t, tname)
}

// FuzzRenameBind: for any client Bind body pgproto3 accepts, the Bind renamed to another
// statement decodes to the same portal, formats, parameters and result formats, under
// the new name; and renaming a body BindFields splits gives back the same fields.
func FuzzRenameBind(f *testing.F) {
	f.Add([]byte("\x00s1\x00\x00\x00\x00\x00\x00\x00"), "pgmux_a")
	f.Add([]byte("p\x00\x00\x00\x01\x00\x01\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07\x00\x00"), "x")
	f.Add([]byte("p\x00s\x00\x00\x00\x00\x01\xff\xff\xff\xff\x00\x01\x00\x00"), "")
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		for i := 0; i < len(name); i++ {
			if name[i] == 0 {
				return // names are C strings
			}
		}
		portal, stmt, tail, ok := BindFields(body)
		if !ok {
			return
		}
		out := AppendBindAs(nil, portal, name, tail)
		typ, obody, rest := decodeOne(t, out)
		require.Equal(t, byte('B'), typ)
		require.Empty(t, rest)
		p2, s2, t2, ok := BindFields(obody)
		require.True(t, ok)
		require.Equal(t, portal, p2)
		require.Equal(t, name, string(s2))
		require.Equal(t, tail, t2)

		var in, got pgproto3.Bind
		if in.Decode(body) != nil {
			return
		}
		require.Equal(t, string(stmt), in.PreparedStatement)
		require.NoError(t, got.Decode(obody))
		in.PreparedStatement = name
		require.Equal(t, in, got)
	})
}

// FuzzParseFields: a Parse body split by ParseFields and put together again under its
// own name (AppendParseAs) or from its parts (AppendParse) is the same message.
func FuzzParseFields(f *testing.F) {
	f.Add([]byte("s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Add([]byte("n\x00q\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		name, query, types, ok := ParseFields(body)
		if !ok {
			return
		}
		whole := AppendParseAs(nil, string(name), body[len(name)+1:])
		parts := AppendParse(nil, string(name), string(query), types)
		require.Equal(t, whole, parts)
		typ, obody, rest := decodeOne(t, whole)
		require.Equal(t, byte('P'), typ)
		require.Empty(t, rest)
		require.Equal(t, body, obody)
	})
}

// TestTwoStringsAsCString: twoStrings (SplitFields, and the Fields methods that cut the
// body where it found the ends) splits as two wire.CString calls do, for every body of up
// to five bytes over {0, 'a'} and random longer ones.
func TestTwoStringsAsCString(t *testing.T) {
	ref := func(b []byte) (first, second, rest []byte, ok bool) {
		first, rest, err := wire.CString(b)
		if err != nil {
			return nil, nil, nil, false
		}
		second, rest, err = wire.CString(rest)
		if err != nil {
			return nil, nil, nil, false
		}
		return first, second, rest, true
	}
	var bodies [][]byte
	for n := 0; n <= 5; n++ {
		for bitsv := 0; bitsv < 1<<n; bitsv++ {
			b := make([]byte, n)
			for i := range b {
				if bitsv&(1<<i) != 0 {
					b[i] = 'a'
				}
			}
			bodies = append(bodies, b)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			if rng.IntN(12) != 0 {
				b[i] = byte('a' + rng.IntN(26))
			}
		}
		bodies = append(bodies, b)
	}
	for _, b := range bodies {
		f1, s1, r1, ok1 := twoStrings(b)
		f2, s2, r2, ok2 := ref(b)
		require.Equal(t, ok2, ok1, "%q", b)
		require.Equal(t, string(f2), string(f1), "%q: first", b)
		require.Equal(t, string(s2), string(s1), "%q: second", b)
		require.Equal(t, string(r2), string(r1), "%q: rest", b)
		if ok1 {
			require.Equal(t, len(b)-len(r2), len(b)-len(r1), "%q: where the rest starts", b)
		}
	}
}
