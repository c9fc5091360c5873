package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/protocol/wire"
)

// scramPeer is a client logging in with SCRAM-SHA-256 as libpq does, over buffers it
// keeps: it answers each Authentication message the session writes, computing its proof
// with an HMAC it reuses, so that it allocates nothing itself and an allocation count
// around a login counts pgmux's.
type scramPeer struct {
	clientKey      []byte
	stored, server hash.Hash // HMAC keyed with StoredKey, with ServerKey
	in             []byte    // what pgmux wrote since the last answer
	out            []byte    // the answer being read, in buf
	buf            [256]byte
	auth, sig, v   []byte
	finalOK        bool // the last SASLFinal carried the server's signature
}

const scramPeerFirst = "n,,n=,r=rOprNGfwEbeRWgbNEkqOAbCd"

func newSCRAMPeer(t *testing.T, v auth.Verifier, password string) *scramPeer {
	// The ClientKey, as a server exchange recovers it from the client's proof.
	ex := auth.NewServerSCRAM(v, nil)
	c := auth.NewClientSCRAM("app", password)
	sf, err := ex.Start(auth.MechanismSCRAM, c.First())
	require.NoError(t, err)
	cf, err := c.Final(sf)
	require.NoError(t, err)
	_, err = ex.Finish(cf)
	require.NoError(t, err)
	return &scramPeer{clientKey: ex.ClientKey(), stored: hmac.New(sha256.New, v.StoredKey), server: hmac.New(sha256.New, v.ServerKey),
		in: make([]byte, 0, 512), auth: make([]byte, 0, 512), sig: make([]byte, 0, 64), v: make([]byte, 0, 64)}
}

// Write takes pgmux's messages, and checks a SASLFinal's signature.
func (p *scramPeer) Write(b []byte) (int, error) {
	p.in = append(p.in, b...)
	for len(p.in) >= 9 && p.in[0] == 'R' {
		n := 1 + int(binary.BigEndian.Uint32(p.in[1:5]))
		if n > len(p.in) || binary.BigEndian.Uint32(p.in[5:9]) != wire.AuthSASLFinal {
			break
		}
		p.server.Reset()
		p.server.Write(p.auth)
		p.sig = p.server.Sum(p.sig[:0])
		p.v = base64.StdEncoding.AppendEncode(append(p.v[:0], "v="...), p.sig)
		p.finalOK = bytes.Equal(p.in[9:n], p.v)
		p.in = append(p.in[:0], p.in[n:]...)
	}
	return len(b), nil
}

// Read gives the answer to the Authentication request pgmux wrote last.
func (p *scramPeer) Read(b []byte) (int, error) {
	if len(p.out) == 0 {
		if len(p.in) < 9 || p.in[0] != 'R' {
			return 0, io.EOF
		}
		code, body := binary.BigEndian.Uint32(p.in[5:9]), p.in[9:]
		m := append(p.buf[:0], 'p', 0, 0, 0, 0)
		switch code {
		case wire.AuthSASL:
			m = binary.BigEndian.AppendUint32(append(m, auth.MechanismSCRAM+"\x00"...), uint32(len(scramPeerFirst)))
			m = append(m, scramPeerFirst...)
		case wire.AuthSASLContinue:
			m = p.final(m, body)
		default:
			return 0, io.EOF
		}
		binary.BigEndian.PutUint32(m[1:5], uint32(len(m)-1))
		p.out, p.in = m, p.in[:0]
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

// final appends the client-final-message answering serverFirst to m.
func (p *scramPeer) final(m, serverFirst []byte) []byte {
	nonce, _, _ := bytes.Cut(serverFirst[len("r="):], []byte{','})
	start := len(m)
	m = append(append(m, "c=biws,r="...), nonce...)
	p.auth = append(append(p.auth[:0], scramPeerFirst[len("n,,"):]...), ',')
	p.auth = append(append(append(p.auth, serverFirst...), ','), m[start:]...)
	p.stored.Reset()
	p.stored.Write(p.auth)
	p.sig = p.stored.Sum(p.sig[:0])
	subtle.XORBytes(p.sig, p.sig, p.clientKey)
	return base64.StdEncoding.AppendEncode(append(m, ",p="...), p.sig)
}

// TestSCRAMLoginAllocatesNothing: a client's SCRAM login against its auth_file secret
// (authenticate with auth_type scram-sha-256: the exchange, its three messages each way,
// the ClientKey kept for pass-through) allocates nothing once the login's pooled buffers
// exist (issue 14: the CPU of a login). It allocated 31 times: the exchange and its
// strings and slices, each message and a copy of each answer, the variables the
// offloaded steps' closures share (on every login, offloaded or not), a copy of the
// ClientKey.
func TestSCRAMLoginAllocatesNothing(t *testing.T) {
	v := auth.NewVerifier("secret", auth.NewSalt(), auth.DefaultIterations)
	peer := newSCRAMPeer(t, v, "secret")
	cfg := &config.Config{AuthType: config.AuthSCRAM}
	srv := &Server{log: zap.NewNop(), creds: map[string]config.Credential{"app": {User: "app", Password: v.String()}},
		scramKeys: make(map[string]scramKeys)}
	s := &Session{srv: srv, rd: wire.NewReader(peer), wr: wire.NewWriter(peer)}
	login := func() {
		peer.finalOK = false
		if err := s.authenticate(cfg, "app"); err != nil {
			t.Fatalf("login: %v", err)
		}
		if err := s.wr.Flush(); err != nil || !peer.finalOK { // the SASLFinal, held for the login's answer
			t.Fatalf("no valid SASLFinal (%v)", err)
		}
	}
	login()
	require.Equal(t, peer.clientKey, srv.scramKeys["app"].clientKey, "the ClientKey is kept for pass-through")
	require.Equal(t, v.ServerKey, srv.scramKeys["app"].serverKey)
	allocs := testing.AllocsPerRun(50, login)
	if raceEnabled {
		return // the pooled buffers are dropped now and then (race_test.go)
	}
	require.Zero(t, allocs, "allocations per SCRAM login")
}
