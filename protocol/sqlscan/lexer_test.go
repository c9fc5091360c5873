package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// lexAll returns "Kind:Text" for every token of src.
func lexAll(src string) []string {
	var out []string
	lx := NewLexer(src)
	for t := lx.Next(); t.Kind != TokEOF; t = lx.Next() {
		out = append(out, t.Kind.String()+":"+t.Text)
	}
	return out
}

func TestLexer(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"words and numbers", "SELECT a1, _b$c FROM t WHERE x >= 1.5e-3 AND y = .5",
			[]string{"Ident:SELECT", "Ident:a1", "Comma:,", "Ident:_b$c", "Ident:FROM", "Ident:t", "Ident:WHERE",
				"Ident:x", "Op:>=", "Number:1.5e-3", "Ident:AND", "Ident:y", "Op:=", "Number:.5"}},
		{"comments skipped", "a -- x\nb /* c /* d */ e */ c", []string{"Ident:a", "Ident:b", "Ident:c"}},
		{"cr ends line comment", "a --x\rb", []string{"Ident:a", "Ident:b"}},
		{"strings", `'a''b' E'c\'d' e'\\' U&'\0041' B'101' X'ff' N'n'`,
			[]string{`String:'a''b'`, `String:E'c\'d'`, `String:e'\\'`, `String:U&'\0041'`,
				"String:B'101'", "String:X'ff'", "String:N'n'"}},
		{"quoted idents", `"a""b" U&"c" u&"d"`, []string{`QuotedIdent:"a""b"`, `QuotedIdent:U&"c"`, `QuotedIdent:u&"d"`}},
		{"dollar quotes", "$$a$b$$ $x$ $$ $x$ $1 $ $y", []string{"String:$$a$b$$", "String:$x$ $$ $x$", "Param:$1", "Op:$", "Op:$", "Ident:y"}},
		{"punctuation", "f(a.b, c[1:2])::int;", []string{"Ident:f", "LParen:(", "Ident:a", "Dot:.", "Ident:b", "Comma:,",
			"Ident:c", "Op:[", "Number:1", "Op::", "Number:2", "Op:]", "RParen:)", "Op:::", "Ident:int", "Semicolon:;"}},
		{"operator trailing minus", "x=-1 a@-b", []string{"Ident:x", "Op:=", "Op:-", "Number:1", "Ident:a", "Op:@-", "Ident:b"}},
		{"operator stops at comment", "a +-- c\n b */* c */ d", []string{"Ident:a", "Op:+", "Ident:b", "Op:*", "Ident:d"}},
		{"unterminated string", "'abc", []string{"String:'abc"}},
		{"unterminated escape at end", `E'abc\`, []string{`String:E'abc\`}},
		{"unterminated ident", `"abc`, []string{`QuotedIdent:"abc`}},
		{"unterminated dollar", "$a$ x", []string{"String:$a$ x"}},
		{"unterminated comment", "a /* b", []string{"Ident:a"}},
		{"high bytes are identifiers", "caf\xc3\xa9 \xff\xfe", []string{"Ident:caf\xc3\xa9", "Ident:\xff\xfe"}},
		{"odd bytes", "\\ { } \x00", []string{`Op:\`, "Op:{", "Op:}", "Op:\x00"}},
		{"colon equals", "a := 1", []string{"Ident:a", "Op::=", "Number:1"}},
		{"plpgsql label", "<<outer>>BEGIN END outer", []string{"Op:<<", "Ident:outer", "Op:>>", "Ident:BEGIN", "Ident:END", "Ident:outer"}},
		{"dollar quote in dollar quote", "$a$ x $b$ ; $b$ $$ $a$;", []string{"String:$a$ x $b$ ; $b$ $$ $a$", "Semicolon:;"}},
		{"doubled quotes in a do body", "DO 'BEGIN EXECUTE ''LISTEN x''; END'", []string{"Ident:DO", "String:'BEGIN EXECUTE ''LISTEN x''; END'"}},
		{"tag is not an identifier", "$x$y$x$ $x1$ a $x1$", []string{"String:$x$y$x$", "String:$x1$ a $x1$"}},
		{"numbers", "0x1F 1_000 12.", []string{"Number:0x1F", "Number:1_000", "Number:12."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.want, lexAll(c.src)) })
	}
}

func TestLexerPositionsAndEOF(t *testing.T) {
	src := "  select /* x */ 'a' ;"
	lx := NewLexer(src)
	for tok := lx.Next(); tok.Kind != TokEOF; tok = lx.Next() {
		require.Equal(t, tok.Text, src[tok.Pos:tok.End()])
	}
	eof := lx.Next()
	require.Equal(t, Token{Kind: TokEOF, Pos: len(src)}, eof)
	require.Equal(t, eof, lx.Next(), "EOF repeats")

	lx.Reset("b")
	require.Equal(t, Token{Kind: TokIdent, Text: "b"}, lx.Next())
}

func TestTokenIdent(t *testing.T) {
	cases := []struct{ src, want string }{
		{"Foo", "foo"},
		{"foo", "foo"},
		{`"Foo"`, "Foo"},
		{`"a""b"`, `a"b`},
		{`"abc`, "abc"},
		{`"a""`, `a"`},
		{`U&"d\0061t\+000061"`, "data"},
		{`U&"a\\b\zz"`, `a\b\zz`},
		{strings.Repeat("x", 80), strings.Repeat("x", 63)},
		{`"` + strings.Repeat("x", 62) + "é\"", strings.Repeat("x", 62)},
		{"'str'", ""},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) { require.Equal(t, c.want, NewLexer(c.src).Next().Ident()) })
	}
}

func TestTokenKindString(t *testing.T) {
	require.Equal(t, "QuotedIdent", TokQuotedIdent.String())
	require.Equal(t, "EOF", TokEOF.String())
	require.Equal(t, "TokenKind(99)", TokenKind(99).String())
}

func TestIsKeywordIsASCIIOnly(t *testing.T) {
	tok := NewLexer("\u212aey").Next() // Kelvin sign: strings.EqualFold would call it "key"
	require.False(t, tok.IsKeyword("key"))
	require.True(t, NewLexer("KeY").Next().IsKeyword("key"))
	require.False(t, NewLexer(`"key"`).Next().IsKeyword("key"))
}
