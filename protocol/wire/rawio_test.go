package wire

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReaderSocket reads through a real socket, the descriptor path that ships
// (readReady, fillRaw): messages split across writes, a header split from its body, one
// larger than the buffer forwarded in chunks, and silence in between, during which the
// reader holds no buffer. Under -race this runs the same code with the ordinary read(2)
// call as its only difference (rawio_other.go), so the race detector sees the path that
// ships.
func TestReaderSocket(t *testing.T) {
	a, b := tcpPair(t)
	rd := NewReader(b)
	require.NotNil(t, rd.raw, "a TCP connection is read through its descriptor")
	big := bytes.Repeat([]byte{'x'}, 3*BufSize+11)
	var stream []byte
	msgs := [][]byte{[]byte("hello"), {}, big, []byte("after the big one")}
	frames := make([][]byte, len(msgs))
	for i, body := range msgs {
		f, st := Begin(nil, byte('a'+i))
		frames[i] = Finish(append(f, body...), st)
		stream = append(stream, frames[i]...)
	}
	// Cut the stream at awkward places: inside the first header, between a header and
	// its body, and inside the large body; pause after each piece so reads see them apart.
	cuts := []int{0, 3, HeaderLen + 5, HeaderLen + 5 + HeaderLen, 2*HeaderLen + 5 + HeaderLen + 100, len(stream)}
	go func() {
		for i := 1; i < len(cuts); i++ {
			if _, err := a.Write(stream[cuts[i-1]:cuts[i]]); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var out bytes.Buffer
	w := NewWriter(&out)
	for i, body := range msgs {
		typ, n, err := rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('a'+i), typ)
		require.Equal(t, len(body), n)
		if n > BufSize {
			require.NoError(t, rd.Forward(w, n))
			require.NoError(t, w.Flush())
			require.True(t, bytes.Equal(frames[i], out.Bytes()), "the large message is forwarded byte for byte")
			continue
		}
		got, err := rd.Message(n)
		require.NoError(t, err)
		require.Equal(t, frames[i], got)
	}
	require.Zero(t, rd.Buffered())
	rd.Release()
	require.Nil(t, rd.buf, "a reader waiting on a silent peer holds no buffer")
	require.NoError(t, a.Close())
	_, _, err := rd.Next()
	require.ErrorIs(t, err, io.EOF)
}

// TestRawIOIsOnlyTheShim keeps true what doc.go says: the files that differ between race
// and normal builds declare read(2) and write(2) and nothing else, so the race detector
// runs every other line of the I/O path that ships.
func TestRawIOIsOnlyTheShim(t *testing.T) {
	for _, path := range []string{"rawio_linux.go", "rawio_other.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		var funcs []string
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				funcs = append(funcs, d.Name.Name)
			case *ast.GenDecl:
				require.Equal(t, token.IMPORT, d.Tok, "%s declares only the shim", path)
			}
		}
		require.Equal(t, []string{"sysRead", "sysWrite"}, funcs, "%s declares only the shim", path)
	}
}

// frame is one whole message of type typ with body.
func frame(typ byte, body string) []byte {
	f, st := Begin(nil, typ)
	return Finish(append(f, body...), st)
}

// TestReaderFirstTryAtBoundary covers tryHeader, the first read at a message boundary
// with nothing buffered, which reads into the header array: the peer's bytes are
// already waiting in every case here (sent before Next), so that first try is the read
// that finds them, whole messages, a header alone, part of a header, or the end.
func TestReaderFirstTryAtBoundary(t *testing.T) {
	settle := func() { time.Sleep(20 * time.Millisecond) } // the bytes reach b's receive queue
	t.Run("several messages waiting", func(t *testing.T) {
		a, b := tcpPair(t)
		rd := NewReader(b)
		q, z := frame('Q', "select 1;"), frame('Z', "I")
		_, err := a.Write(append(append([]byte{}, q...), z...))
		require.NoError(t, err)
		settle()
		for _, want := range [][]byte{q, z} {
			typ, n, err := rd.Next()
			require.NoError(t, err)
			require.Equal(t, want[0], typ)
			got, err := rd.Message(n)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
		require.Zero(t, rd.Buffered(), "both came in the first try's two reads")
	})
	for _, cut := range []int{HeaderLen, 3, 1} {
		t.Run(fmt.Sprintf("%d bytes waiting, the rest later", cut), func(t *testing.T) {
			a, b := tcpPair(t)
			rd := NewReader(b)
			m := frame('D', "some row bytes")
			_, err := a.Write(m[:cut])
			require.NoError(t, err)
			settle()
			go func() {
				time.Sleep(30 * time.Millisecond)
				_, _ = a.Write(m[cut:])
			}()
			typ, n, err := rd.Next()
			require.NoError(t, err)
			require.Equal(t, byte('D'), typ)
			got, err := rd.Message(n)
			require.NoError(t, err)
			require.Equal(t, m, got)
		})
	}
	t.Run("the peer already left", func(t *testing.T) {
		a, b := tcpPair(t)
		rd := NewReader(b)
		require.NoError(t, a.Close())
		settle()
		_, _, err := rd.Next()
		require.ErrorIs(t, err, io.EOF)
		require.Nil(t, rd.buf, "nothing read, no buffer taken")
	})
	t.Run("a header, then the peer left", func(t *testing.T) {
		a, b := tcpPair(t)
		rd := NewReader(b)
		_, err := a.Write(frame('D', "cut short")[:HeaderLen+2])
		require.NoError(t, err)
		require.NoError(t, a.Close())
		settle()
		typ, n, err := rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('D'), typ)
		_, err = rd.Message(n)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}

// TestReaderReady: a reader told its bytes are there (Ready) reads them straight into a
// buffer, where one at a message boundary tries the header alone first (tryHeader, which
// reads into the header array: two reads for a short message instead of one).
func TestReaderReady(t *testing.T) {
	for _, ready := range []bool{false, true} {
		t.Run(fmt.Sprintf("ready=%v", ready), func(t *testing.T) {
			a, b := tcpPair(t)
			rd := NewReader(b)
			m := frame('p', "SCRAM-SHA-256 client-first")
			_, err := a.Write(m)
			require.NoError(t, err)
			time.Sleep(20 * time.Millisecond)
			if ready {
				rd.Ready()
			}
			typ, n, err := rd.Next()
			require.NoError(t, err)
			require.Equal(t, byte('p'), typ)
			got, err := rd.Message(n)
			require.NoError(t, err)
			require.Equal(t, m, got)
			if ready {
				require.Equal(t, [HeaderLen]byte{}, rd.small, "read in one call, not through the header array")
			} else {
				require.Equal(t, m[:HeaderLen], rd.small[:], "the header tried first")
			}
			require.False(t, rd.ready, "Ready holds for one read")
		})
	}
}

// TestReaderShrink covers Shrink over a real socket: a short request already buffered
// moves into a small buffer with its header still unconsumed, reads on from there as if
// nothing happened, and the next read from the socket trades the small buffer for a
// pool-sized one; more than SmallBufSize bytes buffered stay where they are, and an empty
// reader just lets its buffer go.
func TestReaderShrink(t *testing.T) {
	settle := func() { time.Sleep(20 * time.Millisecond) }
	a, b := tcpPair(t)
	rd := NewReader(b)
	p, s := frame('P', "\x00select 1\x00\x00\x00"), frame('S', "")
	_, err := a.Write(append(append([]byte{}, p...), s...))
	require.NoError(t, err)
	settle()
	typ, n, err := rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('P'), typ)
	seq := rd.Seq()
	rd.Shrink()
	require.Equal(t, SmallBufSize, cap(*rd.buf), "the request waits in a small buffer")
	require.Equal(t, len(p)+len(s), rd.Buffered())
	require.Equal(t, seq, rd.Seq())
	got, err := rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, p, got)
	typ, n, err = rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('S'), typ)
	got, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, s, got)

	// A message that arrives in two parts while the small buffer holds the first.
	q := frame('Q', strings.Repeat("x", 3*SmallBufSize))
	_, err = a.Write(q[:100])
	require.NoError(t, err)
	settle()
	typ, n, err = rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	rd.Shrink()
	require.Equal(t, SmallBufSize, cap(*rd.buf))
	go func() {
		settle()
		_, _ = a.Write(q[100:])
	}()
	got, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, q, got)
	require.Equal(t, BufSize, cap(*rd.buf), "reading from the socket takes a pool-sized buffer")

	// More than SmallBufSize buffered: Shrink leaves it.
	_, err = a.Write(q)
	require.NoError(t, err)
	settle()
	_, n, err = rd.Next()
	require.NoError(t, err)
	big := rd.buf
	rd.Shrink()
	require.Same(t, big, rd.buf)
	got, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, q, got)

	// Nothing buffered: the buffer goes back.
	rd.Shrink()
	require.Nil(t, rd.buf)
	require.NoError(t, a.Close())
	_, _, err = rd.Next()
	require.ErrorIs(t, err, io.EOF)
}
