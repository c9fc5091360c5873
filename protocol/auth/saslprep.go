package auth

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// saslPrep prepares a password the way PostgreSQL's pg_saslprep does
// (RFC 4013, the SASLprep profile of RFC 3454 stringprep), and falls back to
// the raw password wherever PostgreSQL does: for invalid UTF-8, for a
// password that maps to nothing, and for prohibited, unassigned or
// badly-mixed bidirectional characters. Pure ASCII passes through
// unchanged, as in PostgreSQL.
//
// Like PostgreSQL, the prohibition and bidi checks run on the mapped input
// (before NFKC) and the NFKC form is returned. Unassigned code points are
// approximated: in the BMP by the Unicode 4.1 tables, the oldest x/text
// ships (so only characters added in Unicode 4.0 and 4.1 are treated as
// assigned where PostgreSQL, using 3.2, would fall back to raw bytes), and
// outside it by the few supplementary blocks Unicode 3.2 had, so that e.g.
// emoji make the password fall back to raw bytes as they do in PostgreSQL.
func saslPrep(password string) string {
	if isASCII(password) || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case inTable(r, nonASCIISpace):
			mapped = append(mapped, ' ')
		case inTable(r, mappedToNothing):
			// dropped
		default:
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return password
	}
	randAL := false
	for _, r := range mapped {
		if inTable(r, prohibited) || isUnassigned32(r) {
			return password
		}
		if c := bidiClass(r); c == bidi.R || c == bidi.AL {
			randAL = true
		}
	}
	if randAL {
		first, last := bidiClass(mapped[0]), bidiClass(mapped[len(mapped)-1])
		if first != bidi.R && first != bidi.AL || last != bidi.R && last != bidi.AL {
			return password
		}
		for _, r := range mapped {
			if bidiClass(r) == bidi.L {
				return password
			}
		}
	}
	return norm.NFKC.String(string(mapped))
}

// isASCII reports whether s is 7-bit.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// bidiClass returns the bidirectional class of r.
func bidiClass(r rune) bidi.Class {
	p, _ := bidi.LookupRune(r)
	return p.Class()
}

// assigned41 holds the code points assigned in Unicode 4.1.
var assigned41 = rangetable.Assigned("4.1.0")

// isUnassigned32 approximates RFC 3454 table A.1 (unassigned in Unicode 3.2).
func isUnassigned32(r rune) bool {
	if !unicode.Is(assigned41, r) {
		return true
	}
	return r > 0xFFFF && !inTable(r, supplementary32)
}

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

// inTable reports whether r falls in one of the sorted ranges of t.
func inTable(r rune, t []runeRange) bool {
	for _, rr := range t {
		if r < rr.lo {
			return false
		}
		if r <= rr.hi {
			return true
		}
	}
	return false
}

// nonASCIISpace is RFC 3454 table C.1.2, mapped to SPACE by SASLprep.
var nonASCIISpace = []runeRange{
	{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B}, {0x202F, 0x202F},
	{0x205F, 0x205F}, {0x3000, 0x3000},
}

// mappedToNothing is RFC 3454 table B.1, removed by SASLprep.
var mappedToNothing = []runeRange{
	{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D},
	{0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
}

// prohibited is the union of RFC 3454 tables C.1.2, C.2.1, C.2.2, C.3, C.4,
// C.5, C.6, C.7, C.8 and C.9, which SASLprep prohibits in output.
var prohibited = []runeRange{
	{0x0000, 0x001F}, {0x007F, 0x00A0}, {0x0340, 0x0341}, {0x06DD, 0x06DD},
	{0x070F, 0x070F}, {0x1680, 0x1680}, {0x180E, 0x180E}, {0x2000, 0x200F},
	{0x2028, 0x202F}, {0x205F, 0x2063}, {0x206A, 0x206F}, {0x2FF0, 0x2FFB},
	{0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFDD0, 0xFDEF}, {0xFEFF, 0xFEFF},
	{0xFFF9, 0xFFFF}, {0x1D173, 0x1D17A}, {0x1FFFE, 0x1FFFF}, {0x2FFFE, 0x2FFFF},
	{0x3FFFE, 0x3FFFF}, {0x4FFFE, 0x4FFFF}, {0x5FFFE, 0x5FFFF}, {0x6FFFE, 0x6FFFF},
	{0x7FFFE, 0x7FFFF}, {0x8FFFE, 0x8FFFF}, {0x9FFFE, 0x9FFFF}, {0xAFFFE, 0xAFFFF},
	{0xBFFFE, 0xBFFFF}, {0xCFFFE, 0xCFFFF}, {0xDFFFE, 0xDFFFF}, {0xE0001, 0xE0001},
	{0xE0020, 0xE007F}, {0xEFFFE, 0x10FFFF},
}

// supplementary32 lists the blocks outside the BMP that Unicode 3.2
// assigned (private use planes are covered by prohibited).
var supplementary32 = []runeRange{
	{0x10300, 0x1034A}, {0x10400, 0x1044D}, {0x1D000, 0x1D1DD}, {0x1D400, 0x1D7FF},
	{0x20000, 0x2A6D6}, {0x2F800, 0x2FA1D}, {0xE0001, 0xE007F},
}
