package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQuoteReadsBack: a quoted name or literal reads back through the lexer as the
// string quoted, whatever quotes, backslashes or keywords it holds.
func TestQuoteReadsBack(t *testing.T) {
	for _, s := range []string{"ch", `a"b`, `""`, "select", "two words", `back\slash`, "it's", "ünï", "semi;colon"} {
		st := Scan("LISTEN " + QuoteIdent(s))
		require.Len(t, st, 1, s)
		require.Equal(t, KindListen, st[0].Kind, s)
		require.Equal(t, s, st[0].Name, "LISTEN %s", QuoteIdent(s))

		if strings.ContainsRune(s, '\\') {
			// The lexer does not decode E'' escapes in set_config's name: no valid
			// parameter name holds a backslash (PostgreSQL refuses it).
			continue
		}
		var got []SetConfig
		for _, st := range Scan("SELECT set_config(" + QuoteLiteral(s) + ", " + QuoteLiteral(s) + ", false)") {
			got = append(got, st.SetConfigs...)
		}
		require.Len(t, got, 1, QuoteLiteral(s))
		require.Equal(t, s, got[0].Name, "set_config(%s, ...)", QuoteLiteral(s))
	}
}
