package proxy

import "strings"

// dateStyle returns what PostgreSQL reports for DateStyle set to v on a server whose
// value is cur (as it reports it), following check_datestyle: v is a comma-separated
// list of words naming an output style, an input order or DEFAULT (cur again), in any
// case; what v leaves out stays cur's, but German brings DMY when v names no order. The
// answer is the style and the order, spelled as PostgreSQL spells them ("Postgres, MDY").
// ok is false where PostgreSQL would refuse v (an unknown word, two different styles or
// orders, an empty item) or where this does not read it (a quoted word). It allocates
// nothing: it runs at login.
func dateStyle(v, cur string) (string, bool) {
	style, order, ok := dateStyleWords(cur, styleISO, orderMDY, "")
	if !ok {
		style, order = styleISO, orderMDY // PostgreSQL's own default
	}
	if style, order, ok = dateStyleWords(v, style, order, cur); !ok {
		return "", false
	}
	return dateStyles[style][order], true
}

// The styles and orders of DateStyle, and how PostgreSQL reports each pair.
const (
	styleISO = iota
	styleSQL
	stylePostgres
	styleGerman
)

const (
	orderYMD = iota
	orderDMY
	orderMDY
)

var dateStyles = [4][3]string{
	{"ISO, YMD", "ISO, DMY", "ISO, MDY"},
	{"SQL, YMD", "SQL, DMY", "SQL, MDY"},
	{"Postgres, YMD", "Postgres, DMY", "Postgres, MDY"},
	{"German, YMD", "German, DMY", "German, MDY"},
}

// dateStyleWords reads the words of a DateStyle value v over style and order; DEFAULT
// stands for def's words (none when def is empty) where v names neither before it. The
// words are a list as PostgreSQL's SplitIdentifierString reads one with a comma: blanks
// around each, none inside, none empty; an empty or blank string is an empty list.
func dateStyleWords(v string, style, order int, def string) (int, int, bool) {
	haveStyle, haveOrder := false, false
	rest := strings.TrimLeft(v, blanks)
	for rest != "" {
		end := strings.IndexAny(rest, ","+blanks)
		if end < 0 {
			end = len(rest)
		}
		w := rest[:end]
		if rest = strings.TrimLeft(rest[end:], blanks); rest != "" {
			if rest[0] != ',' {
				return 0, 0, false
			}
			if rest = strings.TrimLeft(rest[1:], blanks); rest == "" {
				return 0, 0, false // a trailing comma: an empty item
			}
		}
		s, o := -1, -1
		switch {
		case w == "" || strings.ContainsRune(w, '"'):
			return 0, 0, false
		case isWord(w, "iso"):
			s = styleISO
		case isWord(w, "sql"):
			s = styleSQL
		case hasPrefixFold(w, "postgres"):
			s = stylePostgres
		case isWord(w, "german"):
			s = styleGerman
			if !haveOrder {
				order = orderDMY
			}
		case isWord(w, "ymd"):
			o = orderYMD
		case isWord(w, "dmy") || hasPrefixFold(w, "euro"):
			o = orderDMY
		case isWord(w, "mdy") || isWord(w, "us") || hasPrefixFold(w, "noneuro"):
			o = orderMDY
		case isWord(w, "default") && def != "":
			ds, do, ok := dateStyleWords(def, style, order, "")
			if !ok {
				return 0, 0, false
			}
			if !haveStyle {
				style = ds
			}
			if !haveOrder {
				order = do
			}
		default:
			return 0, 0, false
		}
		if s >= 0 {
			if haveStyle && style != s {
				return 0, 0, false
			}
			style, haveStyle = s, true
		}
		if o >= 0 {
			if haveOrder && order != o {
				return 0, 0, false
			}
			order, haveOrder = o, true
		}
	}
	return style, order, true
}

// isWord reports whether w is word, a lower-case one, but for ASCII case: PostgreSQL
// lower-cases the list's words (ASCII letters) and compares them with its own.
func isWord(w, word string) bool {
	if len(w) != len(word) {
		return false
	}
	for i := range len(w) {
		c := w[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether w begins with prefix, a lower-case word, but for ASCII
// case.
func hasPrefixFold(w, prefix string) bool {
	return len(w) >= len(prefix) && isWord(w[:len(prefix)], prefix)
}

// blanks are the characters PostgreSQL's scanner takes for white space.
const blanks = " \t\n\r\f"
