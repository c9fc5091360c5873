package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServerSCRAMMalformedFirst(t *testing.T) {
	tests := []struct{ name, msg string }{
		{"empty", ""},
		{"no gs2", "n=,r=abc"},
		{"gs2 only", "n,,"},
		{"bad flag", "x,,n=,r=abc"},
		{"bad p flag", "p,,n=,r=abc"},
		{"no user", "n,,r=abc"},
		{"no nonce", "n,,n="},
		{"empty nonce", "n,,n=,r="},
		{"nonce not printable", "n,,n=,r=ab\x7fc"},
		{"nonce with space", "n,,n=,r=a bc"},
		{"nul byte", "n,,n=\x00,r=abc"},
		{"invalid utf8", "n,,n=\xff,r=abc"},
		{"bad attribute", "n,,n=,r=abc,junk"},
		{"numeric key", "n,,n=,r=abc,1=x"},
		{"trailing comma", "n,,n=,r=abc,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServerSCRAM(NewVerifier("pw", NewSalt(), 1), nil)
			_, err := s.Start(MechanismSCRAM, []byte(tt.msg))
			require.ErrorIs(t, err, ErrProtocolViolation)
			_, err = s.Finish([]byte("c=biws,r=abc,p=x"))
			require.ErrorContains(t, err, "state failed")
		})
	}
}

// TestServerSCRAMUnsupported: a well-formed client-first-message asking for what
// PostgreSQL does not support either fails with ErrNotSupported (0A000 there), not as a
// malformed message.
func TestServerSCRAMUnsupported(t *testing.T) {
	for _, msg := range []string{"n,,m=ext,n=,r=abc", "n,a=admin,n=,r=abc"} {
		s := NewServerSCRAM(NewVerifier("pw", NewSalt(), 1), nil)
		_, err := s.Start(MechanismSCRAM, []byte(msg))
		require.ErrorIs(t, err, ErrNotSupported, msg)
		require.NotErrorIs(t, err, ErrProtocolViolation, msg)
	}
}

func TestServerSCRAMAcceptsExtensions(t *testing.T) {
	s := NewServerSCRAM(NewVerifier("pw", NewSalt(), 1), nil)
	_, err := s.Start(MechanismSCRAM, []byte("n,,n=someone,r=abc,x=ext"))
	require.NoError(t, err)
}

func TestServerSCRAMMalformedFinal(t *testing.T) {
	proof := b64.EncodeToString(make([]byte, keyLen))
	tests := []struct{ name, msg string }{
		{"empty", ""},
		{"no channel binding", "r=@N,p=" + proof},
		{"channel binding not base64", "c=b!ws,r=@N,p=" + proof},
		{"wrong channel binding", "c=eSws,r=@N,p=" + proof},
		{"no nonce", "c=biws,p=" + proof},
		{"wrong nonce", "c=biws,r=@Nx,p=" + proof},
		{"no proof", "c=biws,r=@N"},
		{"proof not last", "c=biws,r=@N,p=" + proof + ",x=y"},
		{"short proof", "c=biws,r=@N,p=AAAA"},
		{"proof not base64", "c=biws,r=@N,p=" + proof[1:]},
		{"nul byte", "c=biws,r=@N,x=\x00,p=" + proof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServerSCRAM(NewVerifier("pw", NewSalt(), 1), nil)
			_, err := s.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
			require.NoError(t, err)
			_, err = s.Finish([]byte(strings.ReplaceAll(tt.msg, "@N", string(s.nonce()))))
			require.ErrorIs(t, err, ErrProtocolViolation)
		})
	}
}

func TestServerSCRAMMisuse(t *testing.T) {
	v := NewVerifier("pw", NewSalt(), 1)

	s := NewServerSCRAM(v, nil)
	_, err := s.Finish([]byte("c=biws,r=abc,p=x"))
	require.ErrorContains(t, err, "state await-client-first")

	s = NewServerSCRAM(v, nil)
	_, err = s.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
	require.NoError(t, err)
	_, err = s.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
	require.ErrorContains(t, err, "state await-client-final")

	s = NewServerSCRAM(Verifier{Iterations: 1}, nil)
	_, err = s.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
	require.ErrorContains(t, err, "invalid SCRAM verifier")

	s = NewServerSCRAM(v, nil)
	_, err = s.ClientFirst([]byte("n,,n=,r=abc"))
	require.ErrorContains(t, err, "state await-client-first", "ClientFirst without StartEmpty")
	s = NewServerSCRAM(v, nil)
	_, err = s.StartEmpty(MechanismSCRAM)
	require.NoError(t, err)
	_, err = s.Finish([]byte("c=biws,r=abc,p=x"))
	require.ErrorContains(t, err, "state await-client-first-response", "Finish before the client-first-message")
	s = NewServerSCRAM(v, nil)
	_, err = s.StartEmpty(MechanismSCRAM)
	require.NoError(t, err)
	_, err = s.ClientFirst(nil)
	require.ErrorIs(t, err, ErrProtocolViolation, "an empty SASLResponse is no client-first-message")
}

func TestMockServerSCRAM(t *testing.T) {
	secret := []byte("per-process random key")
	first := func(user string) string {
		s := NewMockServerSCRAM(user, secret, nil)
		out, err := s.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
		require.NoError(t, err)
		sf, err := parseServerFirst(out, "abc")
		require.NoError(t, err)
		return b64.EncodeToString(sf.salt)
	}
	require.Equal(t, first("ghost"), first("ghost"))
	require.NotEqual(t, first("ghost"), first("phantom"))

	for _, password := range []string{"", "secret", "guess"} {
		err := exchange(t, NewMockServerSCRAM("ghost", secret, nil), NewClientSCRAM("ghost", password))
		require.ErrorIs(t, err, ErrPasswordMismatch)
	}
	// On TLS an unknown user is offered what a known one is: the mechanisms listed must
	// not tell them apart.
	binding := []byte("tls-server-end-point hash")
	require.Equal(t, NewServerSCRAM(Verifier{}, binding).Mechanisms(), NewMockServerSCRAM("ghost", secret, binding).Mechanisms())
	require.Equal(t, NewServerSCRAM(Verifier{}, nil).Mechanisms(), NewMockServerSCRAM("ghost", secret, nil).Mechanisms())
}

func TestClientSCRAMMechanism(t *testing.T) {
	c := NewClientSCRAM("u", "pw")
	got, err := c.Mechanism([]string{MechanismSCRAMPlus, MechanismSCRAM})
	require.NoError(t, err)
	require.Equal(t, MechanismSCRAM, got)
	_, err = c.Mechanism([]string{MechanismSCRAMPlus})
	require.ErrorContains(t, err, "supports only")
	_, err = c.Mechanism(nil)
	require.Error(t, err)
}

func TestClientSCRAMFirst(t *testing.T) {
	c := NewClientSCRAM("u", "pw")
	first := string(c.First())
	require.True(t, strings.HasPrefix(first, "n,,n=,r="))
	require.True(t, isPrintableNonce(strings.TrimPrefix(first, "n,,n=,r=")))
	require.Equal(t, first, string(c.First()))
	require.NotEqual(t, first, string(NewClientSCRAM("u", "pw").First()))
}

func TestClientSCRAMMalformedServerFirst(t *testing.T) {
	tests := []struct{ name, msg string }{
		{"empty", ""},
		{"extension m", "m=x,r=@Nsrv,s=QUJD,i=4096"},
		{"nonce not extended", "r=@N,s=QUJD,i=4096"},
		{"nonce replaced", "r=otherclientnonceXXXXXXXXXX,s=QUJD,i=4096"},
		{"no salt", "r=@Nsrv,i=4096"},
		{"empty salt", "r=@Nsrv,s=,i=4096"},
		{"salt not base64", "r=@Nsrv,s=QU!D,i=4096"},
		{"no iterations", "r=@Nsrv,s=QUJD"},
		{"zero iterations", "r=@Nsrv,s=QUJD,i=0"},
		{"iterations not a number", "r=@Nsrv,s=QUJD,i=4k"},
		{"order", "s=QUJD,r=@Nsrv,i=4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClientSCRAM("u", "pw")
			c.First()
			_, err := c.Final([]byte(strings.ReplaceAll(tt.msg, "@N", c.nonce)))
			require.ErrorIs(t, err, ErrProtocolViolation)
			require.ErrorContains(t, c.Verify([]byte("v=x")), "state failed")
		})
	}
}

func TestClientSCRAMVerify(t *testing.T) {
	run := func(t *testing.T) (*ClientSCRAM, []byte) {
		v := NewVerifier("pw", NewSalt(), 1)
		s := NewServerSCRAM(v, nil)
		c := NewClientSCRAM("u", "pw")
		sf, err := s.Start(MechanismSCRAM, c.First())
		require.NoError(t, err)
		cf, err := c.Final(sf)
		require.NoError(t, err)
		final, err := s.Finish(cf)
		require.NoError(t, err)
		return c, final
	}
	t.Run("ok with extension", func(t *testing.T) {
		c, final := run(t)
		require.NoError(t, c.Verify(append(final, ",x=ext"...)))
	})
	t.Run("server error", func(t *testing.T) {
		c, _ := run(t)
		require.ErrorContains(t, c.Verify([]byte("e=invalid-proof")), `"invalid-proof"`)
	})
	t.Run("forged signature", func(t *testing.T) {
		c, _ := run(t)
		require.ErrorIs(t, c.Verify([]byte("v="+b64.EncodeToString(make([]byte, keyLen)))), ErrServerSignature)
	})
	t.Run("short signature", func(t *testing.T) {
		c, _ := run(t)
		require.ErrorIs(t, c.Verify([]byte("v=AAAA")), ErrProtocolViolation)
	})
	t.Run("garbage", func(t *testing.T) {
		c, _ := run(t)
		require.ErrorIs(t, c.Verify([]byte("\xff")), ErrProtocolViolation)
	})
	t.Run("before final", func(t *testing.T) {
		c := NewClientSCRAM("u", "pw")
		require.ErrorContains(t, c.Verify([]byte("v=x")), "state init")
		_, err := c.Final([]byte("r=x,s=QUJD,i=1"))
		require.ErrorContains(t, err, "state init")
	})
}
