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
// error ends the exchange. A ServerSCRAM is used by one goroutine and is not
// reusable.
type ServerSCRAM struct {
	v              Verifier
	channelBinding []byte // tls-server-end-point hash, nil without TLS
	doomed         bool   // mock exchange: always fails at Finish

	state     serverState
	plus      bool // the client selected SCRAM-SHA-256-PLUS
	first     clientFirst
	srvFirst  string
	nonce     string // client nonce + server nonce
	clientKey []byte // recovered from the proof after success
}

// NewServerSCRAM returns a server exchange for v. channelBinding is the
// tls-server-end-point hash of the certificate pgmux presented on this
// connection, or nil (or empty) when the client is not on TLS; with it, the client may
// pick SCRAM-SHA-256-PLUS and a client claiming it cannot bind is refused.
func NewServerSCRAM(v Verifier, channelBinding []byte) *ServerSCRAM {
	return &ServerSCRAM{v: v, channelBinding: channelBinding}
}

// NewMockServerSCRAM returns an exchange for a user that does not exist or
// has no usable secret. It looks like a real one to the client, with a salt
// stable per user (derived from secret, a random per-process key), and
// fails at Finish with ErrPasswordMismatch, so that probing cannot tell
// unknown users from wrong passwords. channelBinding is as for NewServerSCRAM: a
// known user on TLS is offered SCRAM-SHA-256-PLUS, so an unknown one is too.
func NewMockServerSCRAM(user string, secret, channelBinding []byte) *ServerSCRAM {
	key := hmacSHA256(secret, "pgmux mock SCRAM\x00"+user)
	salt, stored, server := hmacSHA256(key[:], "salt"), hmacSHA256(key[:], "stored"), hmacSHA256(key[:], "server")
	v := Verifier{
		Iterations: DefaultIterations,
		Salt:       salt[:DefaultSaltLen],
		StoredKey:  stored[:],
		ServerKey:  server[:],
	}
	return &ServerSCRAM{v: v, doomed: true, channelBinding: channelBinding}
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
// StartEmpty's challenge, and returns the server-first-message.
func (s *ServerSCRAM) ClientFirst(clientFirst []byte) (serverFirst []byte, err error) {
	if s.state != serverAwaitClientFirst {
		return nil, errors.New("auth: ServerSCRAM.ClientFirst called in state " + s.state.String())
	}
	s.state = serverFailed
	cf, err := parseClientFirst(string(clientFirst))
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
	s.first = cf
	s.nonce = cf.nonce + newNonce()
	s.srvFirst = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.v.Salt) + ",i=" + strconv.Itoa(s.v.Iterations)
	s.state = serverAwaitFinal
	return []byte(s.srvFirst), nil
}

// Finish consumes the client-final-message (SASLResponse) and returns the
// server-final-message. It returns an error wrapping ErrPasswordMismatch if
// the proof is wrong, ErrChannelBinding if the data bound is not this
// connection's, and ErrProtocolViolation if the message is malformed.
func (s *ServerSCRAM) Finish(clientFinal []byte) (serverFinal []byte, err error) {
	if s.state != serverAwaitFinal {
		return nil, errors.New("auth: ServerSCRAM.Finish called in state " + s.state.String())
	}
	s.state = serverFailed
	cf, err := parseClientFinal(string(clientFinal))
	if err != nil {
		return nil, err
	}
	want := []byte(s.first.gs2Header)
	if s.first.cbFlag == 'p' {
		want = append(want, s.channelBinding...)
	}
	if subtle.ConstantTimeCompare(cf.channelBinding, want) != 1 {
		if s.first.cbFlag == 'p' { // the data bound is not this connection's
			return nil, fmt.Errorf("%w: channel binding check failed", ErrChannelBinding)
		}
		return nil, violation("channel binding attribute does not repeat the GS2 header")
	}
	if subtle.ConstantTimeCompare([]byte(cf.nonce), []byte(s.nonce)) != 1 {
		return nil, violation("nonce does not match")
	}
	authMessage := s.first.bare + "," + s.srvFirst + "," + cf.withoutProof
	clientKey := hmacSHA256(s.v.StoredKey, authMessage) // the ClientSignature, until the proof is XORed in
	subtle.XORBytes(clientKey[:], clientKey[:], cf.proof)
	stored := sha256.Sum256(clientKey[:])
	if !hmac.Equal(stored[:], s.v.StoredKey) || s.doomed {
		return nil, ErrPasswordMismatch
	}
	s.clientKey = append([]byte(nil), clientKey[:]...)
	s.state = serverDone
	sig := hmacSHA256(s.v.ServerKey, authMessage)
	return []byte("v=" + b64.EncodeToString(sig[:])), nil
}

// ClientKey returns, after a successful Finish, the client's ClientKey
// recovered from its proof. With the verifier's ServerKey it lets
// NewClientSCRAMFromKeys log in to a server holding the same secret
// (SCRAM pass-through). It returns nil before success.
func (s *ServerSCRAM) ClientKey() []byte {
	if s.state != serverDone {
		return nil
	}
	return append([]byte(nil), s.clientKey...)
}

// Done reports whether the client has authenticated.
func (s *ServerSCRAM) Done() bool { return s.state == serverDone }
