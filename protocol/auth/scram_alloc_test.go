package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"testing"

	"github.com/stretchr/testify/require"
)

// proofClient plays the client side of a SCRAM exchange over buffers it keeps, so that
// an allocation count around an exchange counts the server's: it sends libpq's
// client-first-message and computes its proof with an HMAC it reuses.
type proofClient struct {
	clientKey           []byte
	stored, server      hash.Hash // HMAC keyed with StoredKey, with ServerKey
	first               []byte
	auth, final, sig, v []byte
}

func newProofClient(t testing.TB, password string, v Verifier) *proofClient {
	clientKey, serverKey, err := deriveKeys(password, v.Salt, v.Iterations)
	require.NoError(t, err)
	stored := sha256.Sum256(clientKey)
	return &proofClient{clientKey: clientKey, stored: hmac.New(sha256.New, stored[:]), server: hmac.New(sha256.New, serverKey),
		first: []byte("n,,n=,r=rOprNGfwEbeRWgbNEkqOAbCd"),
		auth:  make([]byte, 0, 512), final: make([]byte, 0, 256), sig: make([]byte, 0, 64), v: make([]byte, 0, 64)}
}

// finalMessage returns the client-final-message answering serverFirst.
func (c *proofClient) finalMessage(serverFirst []byte) []byte {
	nonce, _, _ := bytes.Cut(serverFirst[len("r="):], []byte{','})
	c.final = append(append(c.final[:0], "c=biws,r="...), nonce...)
	c.auth = append(append(c.auth[:0], c.first[len("n,,"):]...), ',')
	c.auth = append(append(append(c.auth, serverFirst...), ','), c.final...)
	c.stored.Reset()
	c.stored.Write(c.auth)
	c.sig = c.stored.Sum(c.sig[:0])
	subtle.XORBytes(c.sig, c.sig, c.clientKey)
	return base64.StdEncoding.AppendEncode(append(c.final, ",p="...), c.sig)
}

// verified reports whether serverFinal carries the server's signature of the last exchange.
func (c *proofClient) verified(serverFinal []byte) bool {
	c.server.Reset()
	c.server.Write(c.auth)
	c.sig = c.server.Sum(c.sig[:0])
	c.v = base64.StdEncoding.AppendEncode(append(c.v[:0], "v="...), c.sig)
	return bytes.Equal(serverFinal, c.v)
}

// exchangeWith runs a whole exchange on s, a new one, for c.
func exchangeWith(s *ServerSCRAM, c *proofClient) ([]byte, error) {
	sf, err := s.Start(MechanismSCRAM, c.first)
	if err != nil {
		return nil, err
	}
	return s.Finish(c.finalMessage(sf))
}

// TestServerSCRAMAllocatesNothing: a SCRAM exchange of the usual sizes (libpq's messages)
// allocates nothing beyond its ServerSCRAM (issue 14: the CPU of a login). It allocated
// 20 times (about 1 KB with the ServerSCRAM): the messages converted to strings and
// split, base64 decoded and encoded into new slices and strings, the server-first-message
// and the AuthMessage concatenated, the ClientKey copied.
func TestServerSCRAMAllocatesNothing(t *testing.T) {
	v := NewVerifier("secret", NewSalt(), DefaultIterations)
	c := newProofClient(t, "secret", v)
	const runs = 50
	servers := make([]*ServerSCRAM, runs+1) // AllocsPerRun runs once more, to warm up
	for i := range servers {
		servers[i] = NewServerSCRAM(v, nil)
	}
	next := 0
	requireNoAllocs(t, runs, c, func() *ServerSCRAM { next++; return servers[next-1] })
}

// requireNoAllocs requires that runs exchanges for c, each on the ServerSCRAM that next
// returns, allocate nothing.
func requireNoAllocs(t *testing.T, runs int, c *proofClient, next func() *ServerSCRAM) {
	t.Helper()
	allocs := testing.AllocsPerRun(runs, func() {
		final, err := exchangeWith(next(), c)
		if err != nil || !c.verified(final) {
			t.Fatalf("exchange: %q, %v", final, err)
		}
	})
	require.Zero(t, allocs, "allocations per SCRAM exchange")
}

// TestServerSCRAMReset: a ServerSCRAM Reset after an exchange (done, failed or half-way)
// runs the next as a new one does, and allocates nothing at all; ResetMock makes it a mock
// exchange that fails as NewMockServerSCRAM's does.
func TestServerSCRAMReset(t *testing.T) {
	v := NewVerifier("secret", NewSalt(), DefaultIterations)
	c := newProofClient(t, "secret", v)
	var s ServerSCRAM
	s.Reset(v, nil)
	_, err := s.Start(MechanismSCRAM, c.first) // half-way
	require.NoError(t, err)
	s.Reset(v, nil)
	final, err := exchangeWith(&s, c)
	require.NoError(t, err)
	require.True(t, c.verified(final))
	key := s.ClientKey()

	s.ResetMock("ghost", []byte("process key"), nil)
	require.Nil(t, s.ClientKey(), "Reset keeps nothing of the last exchange")
	_, err = exchangeWith(&s, c)
	require.ErrorIs(t, err, ErrPasswordMismatch)
	mock := NewMockServerSCRAM("ghost", []byte("process key"), nil)
	require.Equal(t, mock.v, s.v, "ResetMock's verifier is NewMockServerSCRAM's")

	s.Reset(v, nil)
	final, err = exchangeWith(&s, c)
	require.NoError(t, err)
	require.True(t, c.verified(final))
	require.Equal(t, key, s.AppendClientKey(nil))

	requireNoAllocs(t, 50, c, func() *ServerSCRAM { s.Reset(v, nil); return &s })
}

// BenchmarkServerSCRAM is a whole server exchange, a new ServerSCRAM each (with the
// client's side, which allocates nothing).
func BenchmarkServerSCRAM(b *testing.B) {
	v := NewVerifier("secret", NewSalt(), DefaultIterations)
	c := newProofClient(b, "secret", v)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := exchangeWith(NewServerSCRAM(v, nil), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerSCRAMReset is BenchmarkServerSCRAM on one ServerSCRAM, Reset for each
// exchange as proxy does with its pooled ones.
func BenchmarkServerSCRAMReset(b *testing.B) {
	v := NewVerifier("secret", NewSalt(), DefaultIterations)
	c := newProofClient(b, "secret", v)
	var s ServerSCRAM
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(v, nil)
		if _, err := exchangeWith(&s, c); err != nil {
			b.Fatal(err)
		}
	}
}
