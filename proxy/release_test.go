//go:build linux

package proxy

import (
	"bytes"
	"runtime"
	rtmetrics "runtime/metrics"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// heapObjects is the heap's live bytes after a collection.
func heapObjects() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// The buffers a wave of logins put back into the wire package's pool survive one
// collection (sync.Pool's victim cache); releaseMemory, run when a wave of parks has
// ended, frees them.
func TestReleaseMemoryFreesPooledBuffers(t *testing.T) {
	const n = 64
	msg := wire.Query(nil, "SELECT 1")
	readers := make([]*wire.Reader, n)
	runtime.GC()
	runtime.GC() // the pool empty, its victim cache too
	base := heapObjects()
	for i := range readers {
		readers[i] = wire.NewReader(bytes.NewReader(msg))
		_, n, err := readers[i].Next() // takes a buffer from the pool
		require.NoError(t, err)
		_, err = readers[i].Message(n)
		require.NoError(t, err)
	}
	for _, rd := range readers {
		rd.Release() // back into the pool, as a parking session's reader
	}
	releaseMemory()
	held := int64(heapObjects()) - int64(base)
	t.Logf("%d bytes held after releaseMemory (%d buffers of %d were pooled)", held, n, wire.BufSize)
	require.Less(t, held, int64(n*wire.BufSize/4), "the pooled buffers outlive releaseMemory")
	runtime.KeepAlive(readers)
}
