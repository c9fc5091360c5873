// Package auth implements the PostgreSQL password authentication exchanges
// as I/O-free state machines: MD5 (AuthenticationMD5Password) and
// SCRAM-SHA-256 / SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677), on both sides of
// the proxy.
//
// It owns:
//   - MD5 password hashing, client responses and verification;
//   - parsing, deriving and formatting SCRAM verifiers as stored in
//     pg_authid.rolpassword and userlist.txt, including SASLprep of the
//     password the way PostgreSQL does it;
//   - ServerSCRAM, which authenticates a client against a Verifier and can
//     recover the client's ClientKey for SCRAM pass-through;
//   - ClientSCRAM, which logs in to a PostgreSQL server either with a plain
//     password or with pass-through keys.
//
// It does not own framing or socket I/O (package wire reads and writes the
// AuthenticationSASL* and SASL*Response messages and hands their payloads
// here), deciding which method a user must use (hba and config live in
// proxy), or the TLS handshake that produces channel-binding data. A server
// exchange's errors wrap ErrPasswordMismatch, ErrProtocolViolation,
// ErrNotSupported or ErrChannelBinding so callers can map them to PostgreSQL's
// SQLSTATEs for each: 28P01, 08P01, 0A000 and 28000 respectively.
//
// Every parser in this package handles attacker-controlled bytes: malformed
// input yields an error, never a panic. Secret comparisons are constant time.
package auth
