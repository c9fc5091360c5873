package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSeqCheck(t *testing.T) {
	tests := []struct {
		name     string
		got      []int
		expected int
		want     seqResult
	}{
		{"all in order", []int{0, 1, 2, 3}, 4, seqResult{Received: 4}},
		{"nothing expected, nothing got", nil, 0, seqResult{}},
		{"all missing", nil, 3, seqResult{Missing: 3}},
		{"gap", []int{0, 1, 3}, 4, seqResult{Received: 3, Missing: 1}},
		{"tail missing", []int{0, 1}, 4, seqResult{Received: 2, Missing: 2}},
		{"duplicate", []int{0, 1, 1, 2}, 3, seqResult{Received: 3, Duplicate: 1}},
		{"duplicate of an old one", []int{0, 1, 2, 0}, 3, seqResult{Received: 3, Duplicate: 1}},
		{"swapped", []int{0, 2, 1, 3}, 4, seqResult{Received: 4, OutOfOrder: 1}},
		{"reversed", []int{3, 2, 1, 0}, 4, seqResult{Received: 4, OutOfOrder: 3}},
		{"beyond the expected", []int{0, 1, 2}, 2, seqResult{Received: 3, Unexpected: 1}},
		{"negative and huge", []int{0, -1, maxSeq}, 1, seqResult{Received: 1, Unexpected: 2}},
		{"word boundary", seqTo(130), 130, seqResult{Received: 130}},
		{"word boundary missing 64", append(seqTo(64), 65, 66), 67, seqResult{Received: 66, Missing: 1}},
		{"everything at once", []int{1, 0, 0, 5, 3}, 4, seqResult{Received: 4, Missing: 1, Duplicate: 1,
			OutOfOrder: 2, Unexpected: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c seqCheck
			for _, s := range tt.got {
				c.add(s)
			}
			got := c.result(tt.expected)
			require.Equal(t, tt.want, got)
			require.Equal(t, got.bad() == 0, tt.want == seqResult{Received: tt.want.Received})
		})
	}
}

// seqTo returns 0, 1, ... n-1.
func seqTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestSeqResultAdd(t *testing.T) {
	r := seqResult{Received: 1, Missing: 2}
	r.add(seqResult{Received: 3, Duplicate: 1, OutOfOrder: 4, Unexpected: 5})
	require.Equal(t, seqResult{Received: 4, Missing: 2, Duplicate: 1, OutOfOrder: 4, Unexpected: 5}, r)
	require.Equal(t, 12, r.bad())
}

func TestPayload(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	p, err := parsePayload(formatPayload(3, 42, at))
	require.NoError(t, err)
	require.Equal(t, payload{notifier: 3, seq: 42, sent: at}, p)
	require.True(t, p.sent.Equal(at))

	p, err = parsePayload(endPayload(2))
	require.NoError(t, err)
	require.Equal(t, payload{notifier: 2, end: true}, p)

	for _, bad := range []string{"", "x", "1", "1:2", "a:1:2", "1:b:2", "1:2:c", "1:2:3:4", "-1:end", "1:fin"} {
		_, err := parsePayload(bad)
		require.Error(t, err, "%q", bad)
	}
}
