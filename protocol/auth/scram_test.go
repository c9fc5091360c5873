package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// exchange runs a full SCRAM conversation between c and s and returns the
// first error from either side.
func exchange(t *testing.T, s *ServerSCRAM, c *ClientSCRAM) error {
	t.Helper()
	return exchangeVia(t, s, c, false)
}

// exchangeVia is exchange, with the client-first-message sent late (in a SASLResponse
// after StartEmpty's challenge) when late is set.
func exchangeVia(t *testing.T, s *ServerSCRAM, c *ClientSCRAM, late bool) error {
	t.Helper()
	mech, err := c.Mechanism(s.Mechanisms())
	require.NoError(t, err)
	serverFirst, err := start(s, mech, c.First(), late)
	if err != nil {
		return err
	}
	clientFinal, err := c.Final(serverFirst)
	if err != nil {
		return err
	}
	serverFinal, err := s.Finish(clientFinal)
	if err != nil {
		return err
	}
	return c.Verify(serverFinal)
}

// start begins s's exchange with mech and the client-first-message: in the
// SASLInitialResponse (Start) or, when late, in the SASLResponse that answers the empty
// challenge of a SASLInitialResponse without an initial response (StartEmpty, then
// ClientFirst).
func start(s *ServerSCRAM, mech string, clientFirst []byte, late bool) ([]byte, error) {
	if !late {
		return s.Start(mech, clientFirst)
	}
	challenge, err := s.StartEmpty(mech)
	if err != nil {
		return nil, err
	}
	if len(challenge) != 0 {
		return nil, fmt.Errorf("StartEmpty's challenge is %q, not empty", challenge)
	}
	return s.ClientFirst(clientFirst)
}

func TestSCRAMRoundTrip(t *testing.T) {
	tests := []struct {
		name, stored, tried string
		cb                  []byte
		wantErr             error
	}{
		{"password", "secret", "secret", nil, nil},
		{"password with TLS", "secret", "secret", []byte("cert hash"), nil},
		{"unicode password", "pässwörd", "pa\u0308sswo\u0308rd", nil, nil},
		{"wrong password", "secret", "Secret", nil, ErrPasswordMismatch},
		{"empty password", "secret", "", nil, ErrPasswordMismatch},
	}
	for _, tt := range tests {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/late=%v", tt.name, late), func(t *testing.T) {
				v := NewVerifier(tt.stored, NewSalt(), DefaultIterations)
				s := NewServerSCRAM(v, tt.cb)
				err := exchangeVia(t, s, NewClientSCRAM("u", tt.tried), late)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					require.False(t, s.Done())
					require.Nil(t, s.ClientKey())
					return
				}
				require.NoError(t, err)
				require.True(t, s.Done())
				clientKey, _, err := deriveKeys(tt.stored, v.Salt, v.Iterations)
				require.NoError(t, err)
				require.Equal(t, clientKey, s.ClientKey())
			})
		}
	}
}

func TestSCRAMAgainstPostgresVerifiers(t *testing.T) {
	for _, tt := range pgVerifiers {
		if tt.divergent {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVerifier(tt.verifier)
			require.NoError(t, err)
			require.NoError(t, exchange(t, NewServerSCRAM(v, nil), NewClientSCRAM("u", tt.password)))
			require.ErrorIs(t, exchange(t, NewServerSCRAM(v, nil), NewClientSCRAM("u", tt.password+"!")), ErrPasswordMismatch)
		})
	}
}

func TestSCRAMPassThrough(t *testing.T) {
	v, err := ParseVerifier(pgVerifiers[0].verifier)
	require.NoError(t, err)

	// A client logs in to pgmux; pgmux recovers its ClientKey.
	front := NewServerSCRAM(v, nil)
	require.NoError(t, exchange(t, front, NewClientSCRAM("u", "secret")))
	clientKey := front.ClientKey()
	require.Len(t, clientKey, keyLen)
	stored := sha256.Sum256(clientKey)
	require.Equal(t, v.StoredKey, stored[:])

	other := NewVerifier("secret", NewSalt(), DefaultIterations)
	tests := []struct {
		name    string
		server  Verifier
		client  *ClientSCRAM
		wantErr error
		wantMsg string
	}{
		{"keys, same secret", v, NewClientSCRAMFromKeys(clientKey, v.ServerKey), nil, ""},
		{"verifier, same secret", v, NewClientSCRAMFromVerifier(v, clientKey), nil, ""},
		{"keys, other salt", other, NewClientSCRAMFromKeys(clientKey, v.ServerKey), ErrPasswordMismatch, ""},
		{"verifier, other salt", other, NewClientSCRAMFromVerifier(v, clientKey), ErrPassThroughMismatch, ""},
		{"verifier, other iterations", NewVerifier("secret", v.Salt, 4097),
			NewClientSCRAMFromVerifier(v, clientKey), ErrPassThroughMismatch, ""},
		{"bad key length", v, NewClientSCRAMFromKeys(clientKey[:5], v.ServerKey), nil, "32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exchange(t, NewServerSCRAM(tt.server, nil), tt.client)
			switch {
			case tt.wantMsg != "":
				require.ErrorContains(t, err, tt.wantMsg)
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
			default:
				require.NoError(t, err)
			}
		})
	}
}

func TestServerSCRAMChannelBinding(t *testing.T) {
	cb := []byte("tls-server-end-point hash of pgmux's certificate")
	tests := []struct {
		name     string
		serverCB []byte
		mech     string
		gs2      string
		clientCB []byte
		wantErr  error
	}{
		{"plus", cb, MechanismSCRAMPlus, "p=tls-server-end-point,,", cb, nil},
		{"plus wrong data", cb, MechanismSCRAMPlus, "p=tls-server-end-point,,", []byte("other"), ErrChannelBinding},
		{"plus other type", cb, MechanismSCRAMPlus, "p=tls-unique,,", cb, ErrProtocolViolation},
		{"plus without binding", cb, MechanismSCRAMPlus, "n,,", nil, ErrProtocolViolation},
		{"plus not offered", nil, MechanismSCRAMPlus, "p=tls-server-end-point,,", cb, ErrProtocolViolation},
		{"plus with empty data", []byte{}, MechanismSCRAMPlus, "p=tls-server-end-point,,", nil, ErrProtocolViolation},
		{"binding without plus", cb, MechanismSCRAM, "p=tls-server-end-point,,", cb, ErrProtocolViolation},
		{"n with TLS", cb, MechanismSCRAM, "n,,", nil, nil},
		{"y without TLS", nil, MechanismSCRAM, "y,,", nil, nil},
		{"y with TLS is a downgrade", cb, MechanismSCRAM, "y,,", nil, ErrChannelBinding},
		{"authzid", nil, MechanismSCRAM, "n,a=admin,", nil, ErrNotSupported},
		{"unknown mechanism", nil, "SCRAM-SHA-1", "n,,", nil, ErrProtocolViolation},
	}
	for _, tt := range tests {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/late=%v", tt.name, late), func(t *testing.T) {
				v := NewVerifier("secret", NewSalt(), DefaultIterations)
				s := NewServerSCRAM(v, tt.serverCB)
				err := bindingExchange(s, tt.mech, tt.gs2, "", tt.clientCB, "secret", late)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					return
				}
				require.NoError(t, err)
				require.True(t, s.Done())
			})
		}
	}
}

// bindingExchange plays a client that sends gs2 and binds clientCB, which
// ClientSCRAM does not do, and checks the server's signature; late sends the
// client-first-message as start does. A pad is sent as the user name and as an
// extension of the client-final-message.
func bindingExchange(s *ServerSCRAM, mech, gs2, pad string, clientCB []byte, password string, late bool) error {
	bare := "n=" + pad + ",r=clientnonce"
	serverFirst, err := start(s, mech, []byte(gs2+bare), late)
	if err != nil {
		return err
	}
	sf, err := parseServerFirst(serverFirst, "clientnonce")
	if err != nil {
		return err
	}
	clientKey, serverKey, err := deriveKeys(password, sf.salt, sf.iterations)
	if err != nil {
		return err
	}
	withoutProof := "c=" + b64.EncodeToString(append([]byte(gs2), clientCB...)) + ",r=" + sf.nonce
	if pad != "" {
		withoutProof += ",x=" + pad
	}
	authMessage := bare + "," + string(serverFirst) + "," + withoutProof
	stored := sha256.Sum256(clientKey)
	proof := hmacSHA256(stored[:], authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	serverFinal, err := s.Finish([]byte(withoutProof + ",p=" + b64.EncodeToString(proof[:])))
	if err != nil {
		return err
	}
	if sig := hmacSHA256(serverKey, authMessage); !bytes.Equal(serverFinal, []byte("v="+b64.EncodeToString(sig[:]))) {
		return ErrServerSignature
	}
	return nil
}

// TestServerSCRAMLongMessages: messages past the room a ServerSCRAM keeps for them (its
// AuthMessage buffer, the channel-binding buffers of Finish) make the same exchange.
func TestServerSCRAMLongMessages(t *testing.T) {
	v := NewVerifier("secret", NewSalt(), DefaultIterations)
	for _, pad := range []string{"", "user", strings.Repeat("u", 300)} {
		for _, cb := range [][]byte{nil, bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 100)} {
			for _, late := range []bool{false, true} {
				mech, gs2 := MechanismSCRAM, "n,,"
				if cb != nil {
					mech, gs2 = MechanismSCRAMPlus, "p=tls-server-end-point,,"
				}
				s := NewServerSCRAM(v, cb)
				require.NoError(t, bindingExchange(s, mech, gs2, pad, cb, "secret", late), "pad %d, binding %d", len(pad), len(cb))
				require.True(t, s.Done())
				if len(pad) > len(s.buf) {
					require.Greater(t, len(s.msg), len(s.buf), "the AuthMessage outgrew buf")
				}
			}
		}
	}
}

// TestRFC7677Vector checks both sides against the example exchange of
// RFC 7677 section 3 (user "user", password "pencil").
func TestRFC7677Vector(t *testing.T) {
	const (
		clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	salt, err := b64.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	require.NoError(t, err)

	c := NewClientSCRAM("user", "pencil")
	c.First()
	c.nonce, c.first = "rOprNGfwEbeRWgbNEkqO", "n=user,r=rOprNGfwEbeRWgbNEkqO"
	got, err := c.Final([]byte(serverFirst))
	require.NoError(t, err)
	require.Equal(t, clientFinal, string(got))
	require.NoError(t, c.Verify([]byte(serverFinal)))

	// The server, given the RFC's nonce for its random part, says what the RFC's does.
	s := NewServerSCRAM(NewVerifier("pencil", salt, 4096), nil)
	_, err = s.Start(MechanismSCRAM, []byte(clientFirst))
	require.NoError(t, err)
	cf, err := parseClientFirst([]byte(clientFirst))
	require.NoError(t, err)
	s.serverFirst(cf, []byte("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"))
	require.Equal(t, serverFirst, string(s.msg[s.bare+1:s.srvEnd]))
	got, err = s.Finish([]byte(clientFinal))
	require.NoError(t, err)
	require.Equal(t, serverFinal, string(got))
}

// TestHMACMatchesCryptoHMAC: hmacSHA256 gives crypto/hmac's answer for keys shorter
// than, as long as and longer than the block, and messages that fit its stack buffer and
// that do not; RFC 4231's test case 2 is among them. A SCRAM-sized HMAC allocates
// nothing.
func TestHMACMatchesCryptoHMAC(t *testing.T) {
	check := func(key []byte, msg string) {
		t.Helper()
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		got := hmacSHA256(key, msg)
		require.Equal(t, m.Sum(nil), got[:], "key %d bytes, message %d bytes", len(key), len(msg))
	}
	rfc := hmacSHA256([]byte("Jefe"), "what do ya want for nothing?")
	require.Equal(t, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", hex.EncodeToString(rfc[:]))
	for _, kl := range []int{0, 1, 32, 63, 64, 65, 131} {
		for _, ml := range []int{0, 1, 55, 64, 200, 511, 512, 513, 4000} {
			key := bytes.Repeat([]byte{byte(kl + 7)}, kl)
			check(key, strings.Repeat(string(rune('a'+ml%26)), ml))
		}
	}
	key, msg := bytes.Repeat([]byte{9}, 32), strings.Repeat("n=user,r=nonce,", 15)
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = hmacSHA256(key, msg) }))
}
