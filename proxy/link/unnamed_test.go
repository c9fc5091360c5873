package link

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSketchAdmits: a key is admitted at its second sighting; a key that shares its slot
// takes it over, so a one-off text costs at most one other text its admission.
func TestSketchAdmits(t *testing.T) {
	var k Sketch
	require.False(t, k.Seen(7), "first sighting")
	require.True(t, k.Seen(7), "second sighting")
	require.True(t, k.Seen(7))
	require.False(t, k.Seen(8), "another slot")
	require.True(t, k.Seen(7), "7 keeps its slot")
	same := uint64(7 + SketchSize) // 7's slot
	require.False(t, k.Seen(same))
	require.False(t, k.Seen(7), "overwritten by the key sharing its slot: seen anew")
	require.False(t, k.Seen(same), "and that one lost it back")
}

// TestAnswerParse: how a Parse the server already has is answered, by the link's state.
func TestAnswerParse(t *testing.T) {
	for _, tc := range []struct {
		name            string
		errSkip         bool
		pending, queued int
		want            ParseAnswer
	}{
		{"idle link", false, 0, 0, ParseNow},
		{"answers due, no request open", false, 0, 3, ParseQueued},
		{"a Sync unanswered", false, 1, 3, ParseStub},
		{"a Query unanswered, nothing else", false, 1, 0, ParseStub},
		{"after an error in the request", true, 0, 2, ParseIgnored},
		{"after an error, a Sync unanswered", true, 1, 2, ParseIgnored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, AnswerParse(tc.errSkip, tc.pending, tc.queued))
		})
	}
}
