// Package sqlscan is a small, allocation-light SQL lexer and statement classifier for the
// pooler's hot path. It splits the text of a simple Query (or a Parse) into statements and
// reports, for each one, whether it touches session state a pooler must care about:
// transaction boundaries, SET/RESET, PREPARE/EXECUTE/DEALLOCATE, DISCARD, LISTEN/UNLISTEN/
// NOTIFY, WITH HOLD cursors, temporary objects, SET ROLE, LOAD, CLOSE and session-level
// advisory lock calls.
//
// The lexer follows PostgreSQL's scanner (scan.l) with standard_conforming_strings on:
// -- and nested /* */ comments, 'strings' with doubled-quote escapes, E'strings' with backslash
// escapes, U&'...' and U&"..." literals, B'...', X'...', N'...', "quoted identifiers",
// $$dollar$$ and $tag$dollar$tag$ quotes, $n parameters and multi-character operators.
// Unterminated quotes and comments run to the end of the input. It never decodes or
// validates UTF-8: bytes >= 0x80 are identifier characters, as in the server.
//
// Statements are split on ';' outside quotes and comments. Parentheses do not hide ';'
// (the server rejects such text anyway), but the body of CREATE [OR REPLACE]
// FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END does, using psql's heuristic (tightened to
// require ATOMIC): BEGIN ATOMIC and CASE open and END closes a block, counted only outside
// parentheses. An unbalanced body runs to the end of the text, which the server rejects
// as a whole.
//
// DO blocks are read too: a DO statement's Do field holds the statements of its
// PL/pgSQL body (block structure stripped, EXECUTE of string literals followed, nested
// DO blocks included), classified like top-level ones; All walks them. SQL built at run
// time and the bodies of called functions stay invisible (see Block).
//
// The package owns lexing and classification only. Deciding what a kind means for a
// session (pin, track, reject) is the proxy's job; nothing here knows about pool modes.
// Everything is safe for concurrent use: there is no package-level mutable state.
package sqlscan
