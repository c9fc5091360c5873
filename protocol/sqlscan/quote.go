package sqlscan

import "strings"

// QuoteIdent quotes s as an SQL identifier ("name"), so that the lexer reads it back as
// the one name s, whatever characters it holds.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteLiteral quotes s as an escape string literal (E'...'), read back as s whatever
// standard_conforming_strings is.
func QuoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
