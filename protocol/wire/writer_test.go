package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestWriterSocket writes through a real socket (the descriptor path): more than the
// socket buffers hold, so the writer must wait for the slow reader, in small writes,
// buffer-sized ones and one larger than the buffer; every byte arrives in order.
func TestWriterSocket(t *testing.T) {
	a, b := tcpPair(t)
	w := NewWriter(a)
	require.NotNil(t, w.raw, "a TCP connection is written through its descriptor")
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 4096)
		for {
			n, err := b.Read(chunk)
			buf.Write(chunk[:n])
			if err != nil {
				got <- buf.Bytes()
				return
			}
			time.Sleep(50 * time.Microsecond) // slower than the writer
		}
	}()
	sizes := []int{5, 100, BufSize - 1, BufSize, 3*BufSize + 7, 1}
	for round := 0; round < 40; round++ {
		for i, n := range sizes {
			p := bytes.Repeat([]byte{byte('a' + (round+i)%26)}, n)
			want.Write(p)
			require.NoError(t, w.Write(p))
		}
		require.NoError(t, w.Flush())
	}
	require.NoError(t, a.Close())
	select {
	case g := <-got:
		require.Equal(t, want.Len(), len(g))
		require.True(t, bytes.Equal(want.Bytes(), g), "bytes differ")
	case <-time.After(30 * time.Second):
		t.Fatal("reader did not finish")
	}
}

// TestWriterSocketErrors: a write deadline and a closed peer surface as errors.
func TestWriterSocketErrors(t *testing.T) {
	a, b := tcpPair(t)
	w := NewWriter(a)
	require.NoError(t, a.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	big := make([]byte, 64<<20) // far more than the socket buffers; nobody reads
	require.ErrorIs(t, w.Write(big), os.ErrDeadlineExceeded)

	require.NoError(t, a.SetWriteDeadline(time.Time{}))
	require.NoError(t, b.Close())
	var err error
	for i := 0; i < 100 && err == nil; i++ { // the first writes may still be accepted
		err = w.Write([]byte("after the peer closed"))
		if err == nil {
			err = w.Flush()
		}
		time.Sleep(time.Millisecond)
	}
	require.Error(t, err)
	require.True(t, errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET), "%v", err)
}

// TestWriterWriteNow: WriteNow sends what was buffered first, then its bytes, holding no
// buffer afterwards, over a socket (the raw path) and over any other io.Writer; over a
// socket it honours the write deadline like Flush.
func TestWriterWriteNow(t *testing.T) {
	a, b := tcpPair(t)
	var plain bytes.Buffer
	for _, w := range []*Writer{NewWriter(a), NewWriter(&plain)} {
		require.NoError(t, w.Write([]byte("buffered ")))
		require.NoError(t, w.WriteNow([]byte("now")))
		require.Zero(t, w.Buffered())
		require.Nil(t, w.op, "no buffer is held after WriteNow")
		require.NoError(t, w.WriteNow(nil))
	}
	require.Equal(t, "buffered now", plain.String())
	got := make([]byte, len("buffered now"))
	require.NoError(t, b.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := io.ReadFull(b, got)
	require.NoError(t, err)
	require.Equal(t, "buffered now", string(got))

	w := NewWriter(a)
	require.NoError(t, a.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	require.ErrorIs(t, w.WriteNow(make([]byte, 64<<20)), os.ErrDeadlineExceeded)
}

// TestWriterTryFlush: over a socket whose peer does not read, TryFlush sends what fits,
// keeps the rest buffered in order and reports EAGAIN, without waiting; Flush then sends
// the rest once the peer reads, and the peer sees every byte once, in order.
func TestWriterTryFlush(t *testing.T) {
	a, b := tcpPair(t)
	require.NoError(t, a.(*net.TCPConn).SetWriteBuffer(8<<10))
	require.NoError(t, b.(*net.TCPConn).SetReadBuffer(8<<10))
	w := NewWriter(a)
	var sent []byte
	blocked := false
	for i := 0; i < 400 && !blocked; i++ { // bounded: a few hundred KB fill the two buffers
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 4000)
		require.NoError(t, w.Write(chunk))
		sent = append(sent, chunk...)
		start := time.Now()
		err := w.TryFlush()
		require.Less(t, time.Since(start), time.Second, "TryFlush does not wait")
		if err == syscall.EAGAIN {
			blocked = true
			require.Positive(t, w.Buffered(), "what the socket did not take stays buffered")
			continue
		}
		require.NoError(t, err)
		require.Zero(t, w.Buffered())
	}
	require.True(t, blocked, "the peer's buffers filled")
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(sent))
		_, _ = io.ReadFull(b, buf)
		got <- buf
	}()
	require.NoError(t, w.Flush())
	require.Equal(t, sent, <-got)
}

// TestWriterRewind: Rewind drops what was written since a Mark while all of it is still
// buffered, and refuses once any of it went out (a flush, a buffer that filled, a write
// past the buffer).
func TestWriterRewind(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	require.NoError(t, w.Write([]byte("whole")))
	m := w.Mark()
	require.NoError(t, w.Write([]byte("torn")))
	require.True(t, w.Rewind(m))
	require.NoError(t, w.Flush())
	require.Equal(t, "whole", out.String())

	m = w.Mark()
	require.NoError(t, w.Write([]byte("a")))
	require.NoError(t, w.Flush())
	require.False(t, w.Rewind(m), "after a flush")

	m = w.Mark()
	require.NoError(t, w.Write(make([]byte, BufSize+1)))
	require.False(t, w.Rewind(m), "after the buffer filled")

	require.NoError(t, w.Flush())
	m = w.Mark()
	require.NoError(t, w.Write(make([]byte, 2*BufSize)))
	require.False(t, w.Rewind(m), "after a write past the buffer")
}
