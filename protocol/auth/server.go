package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
)

// serverState is the position of a ServerSCRAM in the exchange.
type serverState uint8

const (
	serverAwaitFirst       serverState = iota // waiting for SASLInitialResponse
	serverAwaitClientFirst                    // sent an empty SASLContinue, waiting for the client-first in a SASLResponse
	serverAwaitFinal                          // sent SASLContinue, waiting for SASLResponse
	serverDone                                // sent SASLFinal: authenticated
	serverFailed                              // any error: the exchange is over
)

// String names the state for logs.
func (s serverState) String() string {
	switch s {
	case serverAwaitFirst:
		return "await-client-first"
	case serverAwaitClientFirst:
		return "await-client-first-response"
	case serverAwaitFinal:
		return "await-client-final"
	case serverDone:
		return "done"
	case serverFailed:
		return "failed"
	}
	return "serverState(" + strconv.Itoa(int(s)) + ")"
}

// ServerSCRAM authenticates one client with SCRAM-SHA-256[-PLUS] against a
// Verifier. Call Start with the SASLInitialResponse, send the returned
// bytes as AuthenticationSASLContinue, call Finish with the SASLResponse and
// send the result as AuthenticationSASLFinal. A SASLInitialResponse without an
// initial response goes to StartEmpty instead, and the SASLResponse that answers
// its empty challenge to ClientFirst, which returns what Start would have. Any
// error ends the exchange. A ServerSCRAM is used by one goroutine; Reset (or
// ResetMock) makes it a new exchange, so that a caller can keep one for the next login.
//
// An exchange allocates nothing when its messages are of the usual sizes (issue 14: a
// login's CPU): the AuthMessage is built once, in buf, as the messages come, and the
// messages returned are views of it or of final, valid until the next Reset. Do not
// copy a ServerSCRAM: msg may point into its own buf.
type ServerSCRAM struct {
	v              Verifier
	channelBinding []byte // tls-server-end-point hash, nil without TLS
	doomed         bool   // mock exchange: always fails at Finish

	state  serverState
	plus   bool // the client selected SCRAM-SHA-256-PLUS
	cbFlag byte // the client-first-message's GS2 channel-binding flag: 'n', 'y' or 'p'
	// msg is the AuthMessage as it grows: client-first-message-bare "," and
	// server-first-message "," from ClientFirst, client-final-message-without-proof from
	// Finish. The server-first-message is msg[bare+1:srvEnd], its "r=" nonce (client's
	// and ours) msg[bare+3:nonceEnd].
	msg                    []byte
	bare, nonceEnd, srvEnd int
	clientKey              [keyLen]byte          // recovered from the proof after success
	final                  [2 + finalSigLen]byte // the server-final-message: "v=" and the ServerSignature
	mock                   [3][keyLen]byte       // a mock exchange's salt and keys, its Verifier's storage
	// random is our nonce's random bytes. Kept here rather than on the stack: a -race
	// build moves a stack array given to crypto/rand to the heap.
	random [nonceLen]byte
	buf    [256]byte // msg's storage while it fits: a login's is about 180 bytes
}

// finalSigLen is the length of the ServerSignature in base64, in "v=" of the server-final-message.
const finalSigLen = (keyLen + 2) / 3 * 4

// NewServerSCRAM returns a server exchange for v. channelBinding is the
// tls-server-end-point hash of the certificate pgmux presented on this
// connection, or nil (or empty) when the client is not on TLS; with it, the client may
// pick SCRAM-SHA-256-PLUS and a client claiming it cannot bind is refused.
func NewServerSCRAM(v Verifier, channelBinding []byte) *ServerSCRAM {
	s := new(ServerSCRAM)
	s.Reset(v, channelBinding)
	return s
}

// Reset makes s a new exchange, as NewServerSCRAM(v, channelBinding) returns, keeping
// only its storage: nothing of the previous exchange (its ClientKey among it) is left.
func (s *ServerSCRAM) Reset(v Verifier, channelBinding []byte) {
	*s = ServerSCRAM{v: v, channelBinding: channelBinding}
}

// NewMockServerSCRAM returns an exchange for a user that does not exist or
// has no usable secret. It looks like a real one to the client, with a salt
// stable per user (derived from secret, a random per-process key), and
// fails at Finish with ErrPasswordMismatch, so that probing cannot tell
// unknown users from wrong passwords. channelBinding is as for NewServerSCRAM: a
// known user on TLS is offered SCRAM-SHA-256-PLUS, so an unknown one is too.
func NewMockServerSCRAM(user string, secret, channelBinding []byte) *ServerSCRAM {
	s := new(ServerSCRAM)
	s.ResetMock(user, secret, channelBinding)
	return s
}

// ResetMock is Reset to the exchange NewMockServerSCRAM returns.
func (s *ServerSCRAM) ResetMock(user string, secret, channelBinding []byte) {
	s.Reset(Verifier{}, channelBinding)
	const label = "pgmux mock SCRAM\x00"
	var in [128]byte
	key := hmacSHA256(secret, append(append(in[:0], label...), user...))
	s.mock[0], s.mock[1], s.mock[2] = hmacSHA256(key[:], "salt"), hmacSHA256(key[:], "stored"), hmacSHA256(key[:], "server")
	s.v = Verifier{
		Iterations: DefaultIterations,
		Salt:       s.mock[0][:DefaultSaltLen],
		StoredKey:  s.mock[1][:],
		ServerKey:  s.mock[2][:],
	}
	s.doomed = true
}

// Mechanisms returns the SASL mechanisms to list in AuthenticationSASL.
func (s *ServerSCRAM) Mechanisms() []string {
	if len(s.channelBinding) > 0 {
		return []string{MechanismSCRAMPlus, MechanismSCRAM}
	}
	return []string{MechanismSCRAM}
}

// Start consumes the client-first-message sent with mechanism in
// SASLInitialResponse and returns the server-first-message.
func (s *ServerSCRAM) Start(mechanism string, clientFirst []byte) (serverFirst []byte, err error) {
	if err := s.selectMechanism(mechanism); err != nil {
		return nil, err
	}
	return s.ClientFirst(clientFirst)
}

// StartEmpty begins the exchange for a SASLInitialResponse that selects mechanism
// without an initial response (its length is -1). As PostgreSQL does, the answer is an
// empty challenge, to send as AuthenticationSASLContinue; the client then sends its
// client-first-message in a SASLResponse, for ClientFirst.
func (s *ServerSCRAM) StartEmpty(mechanism string) (challenge []byte, err error) {
	if err := s.selectMechanism(mechanism); err != nil {
		return nil, err
	}
	return []byte{}, nil
}

// selectMechanism checks the mechanism the client selected in SASLInitialResponse.
func (s *ServerSCRAM) selectMechanism(mechanism string) error {
	if s.state != serverAwaitFirst {
		return errors.New("auth: ServerSCRAM.Start called in state " + s.state.String())
	}
	s.state = serverFailed
	if err := s.v.validate(); err != nil {
		return err
	}
	switch mechanism {
	case MechanismSCRAM:
	case MechanismSCRAMPlus:
		if len(s.channelBinding) == 0 {
			return violation("client selected %s, which was not offered", MechanismSCRAMPlus)
		}
		s.plus = true
	default:
		return violation("unsupported SASL mechanism %q", truncate(mechanism))
	}
	s.state = serverAwaitClientFirst
	return nil
}

// ClientFirst consumes the client-first-message, from the SASLResponse that answers
// StartEmpty's challenge, and returns the server-first-message (s's, valid until Reset).
func (s *ServerSCRAM) ClientFirst(clientFirst []byte) (serverFirst []byte, err error) {
	if s.state != serverAwaitClientFirst {
		return nil, errors.New("auth: ServerSCRAM.ClientFirst called in state " + s.state.String())
	}
	s.state = serverFailed
	cf, err := parseClientFirst(clientFirst)
	if err != nil {
		return nil, err
	}
	switch {
	case s.plus && cf.cbFlag != 'p':
		return nil, violation("client selected %s but sent no channel binding", MechanismSCRAMPlus)
	case !s.plus && cf.cbFlag == 'p':
		return nil, violation("client selected %s but sent channel binding data", MechanismSCRAM)
	case cf.cbFlag == 'y' && len(s.channelBinding) > 0:
		// The client can bind but believes we cannot: someone removed
		// the PLUS mechanism from our offer.
		return nil, fmt.Errorf("%w: channel binding negotiation error (possible downgrade attack)", ErrChannelBinding)
	}
	var nonce [nonceB64Len]byte
	s.serverFirst(cf, appendNonce(nonce[:0], &s.random))
	s.state = serverAwaitFinal
	return s.msg[s.bare+1 : s.srvEnd : s.srvEnd], nil
}

// serverFirst starts the AuthMessage with cf's bare part and the server-first-message,
// whose nonce is the client's followed by ours.
func (s *ServerSCRAM) serverFirst(cf clientFirst, ours []byte) {
	s.cbFlag = cf.cbFlag
	m := append(s.buf[:0], cf.bare...)
	s.bare = len(m)
	m = append(append(append(m, ",r="...), cf.nonce...), ours...)
	s.nonceEnd = len(m)
	m = b64.AppendEncode(append(m, ",s="...), s.v.Salt)
	m = strconv.AppendInt(append(m, ",i="...), int64(s.v.Iterations), 10)
	s.srvEnd = len(m)
	s.msg = append(m, ',')
}

// nonce is the exchange's nonce, the client's and ours, as the server-first-message
// sent it.
func (s *ServerSCRAM) nonce() []byte { return s.msg[s.bare+3 : s.nonceEnd] }

// Finish consumes the client-final-message (SASLResponse) and returns the
// server-final-message (s's, valid until Reset). It returns an error wrapping
// ErrPasswordMismatch if the proof is wrong, ErrChannelBinding if the data bound is not
// this connection's, and ErrProtocolViolation if the message is malformed.
func (s *ServerSCRAM) Finish(clientFinal []byte) (serverFinal []byte, err error) {
	if s.state != serverAwaitFinal {
		return nil, errors.New("auth: ServerSCRAM.Finish called in state " + s.state.String())
	}
	s.state = serverFailed
	var got, want [96]byte // room for the GS2 header and a certificate's SHA-512 hash
	cf, err := parseClientFinal(clientFinal, got[:0])
	if err != nil {
		return nil, err
	}
	bound := append(want[:0], gs2Header(s.cbFlag)...)
	if s.cbFlag == 'p' {
		bound = append(bound, s.channelBinding...)
	}
	if subtle.ConstantTimeCompare(cf.channelBinding, bound) != 1 {
		if s.cbFlag == 'p' { // the data bound is not this connection's
			return nil, fmt.Errorf("%w: channel binding check failed", ErrChannelBinding)
		}
		return nil, violation("channel binding attribute does not repeat the GS2 header")
	}
	if subtle.ConstantTimeCompare(cf.nonce, s.nonce()) != 1 {
		return nil, violation("nonce does not match")
	}
	s.msg = append(s.msg, cf.withoutProof...)     // the AuthMessage is whole
	clientKey := hmacSHA256(s.v.StoredKey, s.msg) // the ClientSignature, until the proof is XORed in
	subtle.XORBytes(clientKey[:], clientKey[:], cf.proof[:])
	stored := sha256.Sum256(clientKey[:])
	if !hmac.Equal(stored[:], s.v.StoredKey) || s.doomed {
		return nil, ErrPasswordMismatch
	}
	s.clientKey = clientKey
	s.state = serverDone
	sig := hmacSHA256(s.v.ServerKey, s.msg)
	s.final[0], s.final[1] = 'v', '='
	b64.Encode(s.final[2:], sig[:])
	return s.final[:], nil
}

// ClientKey returns, after a successful Finish, the client's ClientKey
// recovered from its proof. With the verifier's ServerKey it lets
// NewClientSCRAMFromKeys log in to a server holding the same secret
// (SCRAM pass-through). It returns nil before success.
func (s *ServerSCRAM) ClientKey() []byte { return s.AppendClientKey(nil) }

// AppendClientKey appends what ClientKey returns to dst (nothing before success).
func (s *ServerSCRAM) AppendClientKey(dst []byte) []byte {
	if s.state != serverDone {
		return dst
	}
	return append(dst, s.clientKey[:]...)
}

// Done reports whether the client has authenticated.
func (s *ServerSCRAM) Done() bool { return s.state == serverDone }
