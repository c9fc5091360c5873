package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSASLPrep(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ascii unchanged", "Pass word!", "Pass word!"},
		{"ascii control kept", "a\x01b", "a\x01b"},
		{"empty", "", ""},
		{"precomposed", "pässwörd", "pässwörd"},
		{"decomposed composes", "pa\u0308ss", "pässwörd"[:3] + "ss"},
		{"soft hyphen dropped", "I\u00ADX", "IX"},
		{"roman numeral folds", "\u2168", "IX"},
		{"fullwidth folds", "ＡＢ\u00ADc", "ABc"},
		{"nbsp to space", "a\u00A0b\u3000c", "a b c"},
		{"zero width space to space", "a\u200Bb", "a b"},
		{"only mapped to nothing", "\u00AD", "\u00AD"},
		{"prohibited control", "ﬁ\u0007x", "ﬁ\u0007x"},
		{"private use", "ﬁ\uE000", "ﬁ\uE000"},
		{"unassigned emoji", "ﬁ\U0001F600", "ﬁ\U0001F600"},
		{"bidi ok", "\uFE8D\u0628", "\u0627\u0628"},
		{"bidi mixed with L", "\uFE8Dﬁ\u0628", "\uFE8Dﬁ\u0628"},
		{"bidi not at end", "\uFE8D\u0661", "\uFE8D\u0661"},
		{"invalid utf8", "ﬁ\xff", "ﬁ\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, saslPrep(tt.in))
		})
	}
}
