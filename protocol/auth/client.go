package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// ErrPassThroughMismatch reports that the server's SCRAM secret has a
// different salt or iteration count from the verifier pgmux holds, so the
// keys recovered from the client cannot log in: the secrets must be
// identical in userlist.txt and on the server.
var ErrPassThroughMismatch = errors.New("auth: SCRAM pass-through needs the server secret to have the same salt and iterations as the pgmux verifier")

// ErrServerSignature reports that the server failed to prove it knows the
// secret: it may be an impostor, or, in pass-through, hold another secret.
var ErrServerSignature = errors.New("auth: SCRAM server signature does not verify")

// clientState is the position of a ClientSCRAM in the exchange.
type clientState uint8

const (
	clientInit      clientState = iota // First not yet called
	clientSentFirst                    // waiting for server-first-message
	clientSentFinal                    // waiting for server-final-message
	clientDone                         // server verified
	clientFailed                       // any error: the exchange is over
)

// String names the state for logs.
func (s clientState) String() string {
	switch s {
	case clientInit:
		return "init"
	case clientSentFirst:
		return "sent-client-first"
	case clientSentFinal:
		return "sent-client-final"
	case clientDone:
		return "done"
	case clientFailed:
		return "failed"
	}
	return "clientState(" + strconv.Itoa(int(s)) + ")"
}

// ClientSCRAM logs pgmux in to a PostgreSQL server with SCRAM-SHA-256,
// without channel binding. Call Mechanism with the offered list, send First
// in SASLInitialResponse, Final(SASLContinue data) in SASLResponse, then
// Verify(SASLFinal data). A ClientSCRAM is used by one goroutine and is not
// reusable.
type ClientSCRAM struct {
	password    string
	hasPassword bool
	clientKey   []byte // pass-through keys when !hasPassword
	serverKey   []byte
	passSalt    []byte // pass-through salt and iterations to insist on, if known
	passIter    int

	state       clientState
	nonce       string
	first       string // client-first-message-bare
	authMessage string
}

// NewClientSCRAM returns a client that derives its keys from password.
// user is not sent: like libpq, pgmux sends "n=" and the server uses the
// user from the startup packet.
func NewClientSCRAM(user, password string) *ClientSCRAM {
	return &ClientSCRAM{password: password, hasPassword: true}
}

// NewClientSCRAMFromKeys returns a pass-through client that proves
// knowledge of the secret with clientKey (from ServerSCRAM.ClientKey) and
// checks the server with serverKey (from the pgmux verifier). It works only
// if the server's secret has the same salt and iterations; without them a
// mismatch surfaces as the server rejecting the proof. Prefer
// NewClientSCRAMFromVerifier, which detects the mismatch before sending.
func NewClientSCRAMFromKeys(clientKey, serverKey []byte) *ClientSCRAM {
	return &ClientSCRAM{clientKey: slices.Clone(clientKey), serverKey: slices.Clone(serverKey)}
}

// NewClientSCRAMFromVerifier is NewClientSCRAMFromKeys with the ServerKey,
// salt and iterations of v; Final fails with ErrPassThroughMismatch when the
// server's salt or iterations differ from v's.
func NewClientSCRAMFromVerifier(v Verifier, clientKey []byte) *ClientSCRAM {
	c := NewClientSCRAMFromKeys(clientKey, v.ServerKey)
	c.passSalt, c.passIter = slices.Clone(v.Salt), v.Iterations
	return c
}

// Mechanism picks the SASL mechanism from those the server offered in
// AuthenticationSASL: SCRAM-SHA-256, since pgmux does not bind channels to
// servers yet.
func (c *ClientSCRAM) Mechanism(offered []string) (string, error) {
	if slices.Contains(offered, MechanismSCRAM) {
		return MechanismSCRAM, nil
	}
	return "", fmt.Errorf("auth: server offers SASL mechanisms %q; pgmux supports only %s", offered, MechanismSCRAM)
}

// First returns the client-first-message "n,,n=,r=<nonce>". Calling it
// again returns the same message.
func (c *ClientSCRAM) First() []byte {
	if c.nonce == "" {
		c.nonce = newNonce()
		c.first = "n=,r=" + c.nonce
	}
	if c.state == clientInit {
		c.state = clientSentFirst
	}
	return []byte("n,," + c.first)
}

// Final consumes the server-first-message and returns the
// client-final-message carrying the proof. With a password it runs PBKDF2
// for the iteration count the server chose, so its cost is the server's.
func (c *ClientSCRAM) Final(serverFirst []byte) ([]byte, error) {
	if c.state != clientSentFirst {
		return nil, errors.New("auth: ClientSCRAM.Final called in state " + c.state.String())
	}
	c.state = clientFailed
	sf, err := parseServerFirst(serverFirst, c.nonce)
	if err != nil {
		return nil, err
	}
	if err := c.keys(sf); err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + sf.nonce // biws is base64("n,,")
	c.authMessage = c.first + "," + string(serverFirst) + "," + withoutProof
	stored := sha256.Sum256(c.clientKey)
	proof := hmacSHA256(stored[:], c.authMessage)
	subtle.XORBytes(proof[:], proof[:], c.clientKey)
	c.state = clientSentFinal
	return []byte(withoutProof + ",p=" + b64.EncodeToString(proof[:])), nil
}

// keys derives ClientKey and ServerKey from the password, or checks that the
// pass-through keys fit the server's parameters.
func (c *ClientSCRAM) keys(sf serverFirst) error {
	if c.hasPassword {
		var err error
		c.clientKey, c.serverKey, err = deriveKeys(c.password, sf.salt, sf.iterations)
		return err
	}
	if len(c.clientKey) != keyLen || len(c.serverKey) != keyLen {
		return fmt.Errorf("auth: SCRAM pass-through keys must be %d bytes", keyLen)
	}
	if c.passSalt != nil && (c.passIter != sf.iterations || !bytes.Equal(c.passSalt, sf.salt)) {
		return fmt.Errorf("%w (server has iterations %d, salt %s; pgmux has iterations %d, salt %s)",
			ErrPassThroughMismatch, sf.iterations, b64.EncodeToString(sf.salt),
			c.passIter, b64.EncodeToString(c.passSalt))
	}
	return nil
}

// Verify checks the server-final-message: the server's signature must
// prove it holds the secret. A server error ("e=") is returned as an error.
func (c *ClientSCRAM) Verify(serverFinal []byte) error {
	if c.state != clientSentFinal {
		return errors.New("auth: ClientSCRAM.Verify called in state " + c.state.String())
	}
	c.state = clientFailed
	a, err := parseAttrs(serverFinal)
	if err != nil {
		return err
	}
	if a.first[0].key == 'e' {
		return fmt.Errorf("auth: SCRAM server error %q", truncate(a.first[0].val))
	}
	sig, err := a.expect(0, 'v')
	if err != nil {
		return err
	}
	got, err := appendKey(nil, sig)
	if err != nil {
		return violation("server signature: %v", err)
	}
	if want := hmacSHA256(c.serverKey, c.authMessage); !hmac.Equal(got, want[:]) {
		return ErrServerSignature
	}
	c.state = clientDone
	return nil
}
