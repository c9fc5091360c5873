package main

import (
	"bufio"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMemoryClasses checks /debug/memory: one line per runtime memory class, whose parts
// add up to the total the runtime reports.
func TestMemoryClasses(t *testing.T) {
	rec := httptest.NewRecorder()
	memoryClasses(rec, httptest.NewRequest("GET", "/debug/memory", nil))
	require.Equal(t, 200, rec.Code)
	vals := map[string]uint64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		require.True(t, ok, "line %q", sc.Text())
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
		vals[name] = n
	}
	total := vals["/memory/classes/total:bytes"]
	require.NotZero(t, total)
	require.NotZero(t, vals["/memory/classes/heap/objects:bytes"])
	require.Contains(t, vals, "/gc/heap/goal:bytes")
	var sum uint64
	for name, v := range vals {
		if name != "/memory/classes/total:bytes" && strings.HasPrefix(name, "/memory/classes/") {
			sum += v
		}
	}
	require.Equal(t, total, sum, "the classes are read in one sample and partition the total")
}
