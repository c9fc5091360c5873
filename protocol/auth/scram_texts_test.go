package auth

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The exact errors a ServerSCRAM gives malformed or refused client messages: their text
// (without "auth: ") is what a client reads in the FATAL (proxy scramFailed), so it must
// not change with the parser under it. Long values are quoted truncated; "@N" in a
// client-final-message stands for the exchange's nonce, "@P" for a proof of the right size.

const plusFirst = "p=" + cbNameTLSServerEndPoint + ",,n=,r=abc"

func TestServerSCRAMClientFirstErrors(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name, mech, msg string
		tls             bool
		want            string // "" for success
	}{
		{"empty", MechanismSCRAM, "", false, "auth: SCRAM protocol violation: client-first-message lacks a GS2 header"},
		{"flag only", MechanismSCRAM, "n,", false, "auth: SCRAM protocol violation: client-first-message lacks a GS2 header"},
		{"header only", MechanismSCRAM, "n,,", false, "auth: SCRAM protocol violation: empty message"},
		{"bad flag", MechanismSCRAM, "x,,n=,r=abc", false, `auth: SCRAM protocol violation: malformed GS2 channel binding flag "x"`},
		{"long flag", MechanismSCRAM, long + ",,n=,r=abc", false,
			`auth: SCRAM protocol violation: malformed GS2 channel binding flag "` + long[:64] + `..."`},
		{"p without type", MechanismSCRAMPlus, "p,,n=,r=abc", true, `auth: SCRAM protocol violation: malformed GS2 channel binding flag "p"`},
		{"other binding type", MechanismSCRAMPlus, "p=tls-unique,,n=,r=abc", true,
			`auth: SCRAM protocol violation: unsupported channel binding type "tls-unique"`},
		{"long binding type", MechanismSCRAMPlus, "p=" + long + ",,n=,r=abc", true,
			`auth: SCRAM protocol violation: unsupported channel binding type "` + long[:64] + `..."`},
		{"authzid", MechanismSCRAM, "n,a=admin,n=,r=abc", false, "auth: SCRAM feature not supported: authorization identity is not supported"},
		{"extension first", MechanismSCRAM, "n,,m=ext,n=,r=abc", false,
			"auth: SCRAM feature not supported: client requires an unsupported SCRAM extension"},
		{"no user", MechanismSCRAM, "n,,r=abc", false, `auth: SCRAM protocol violation: expected attribute 'n', got 'r'`},
		{"no nonce", MechanismSCRAM, "n,,n=", false, `auth: SCRAM protocol violation: missing attribute 'r'`},
		{"nonce second", MechanismSCRAM, "n,,n=,x=1,r=abc", false, `auth: SCRAM protocol violation: expected attribute 'r', got 'x'`},
		{"empty nonce", MechanismSCRAM, "n,,n=,r=", false, "auth: SCRAM protocol violation: client nonce is not printable"},
		{"nonce with DEL", MechanismSCRAM, "n,,n=,r=ab\x7fc", false, "auth: SCRAM protocol violation: client nonce is not printable"},
		{"NUL", MechanismSCRAM, "n,,n=\x00,r=abc", false, "auth: SCRAM protocol violation: message is not UTF-8 text"},
		{"not UTF-8", MechanismSCRAM, "n,,n=\xff,r=abc", false, "auth: SCRAM protocol violation: message is not UTF-8 text"},
		{"junk attribute", MechanismSCRAM, "n,,n=,r=abc,junk", false, `auth: SCRAM protocol violation: malformed attribute "junk"`},
		{"numeric key", MechanismSCRAM, "n,,n=,r=abc,1=x", false, `auth: SCRAM protocol violation: malformed attribute "1=x"`},
		{"trailing comma", MechanismSCRAM, "n,,n=,r=abc,", false, `auth: SCRAM protocol violation: malformed attribute ""`},
		{"empty first attribute", MechanismSCRAM, "n,,,n=,r=abc", false, `auth: SCRAM protocol violation: malformed attribute ""`},
		{"long malformed attribute", MechanismSCRAM, "n,,n=,r=abc," + long, false,
			`auth: SCRAM protocol violation: malformed attribute "` + long[:64] + `..."`},
		{"unknown mechanism", "SCRAM-SHA-1", "n,,n=,r=abc", false, `auth: SCRAM protocol violation: unsupported SASL mechanism "SCRAM-SHA-1"`},
		{"long mechanism", long, "n,,n=,r=abc", false, `auth: SCRAM protocol violation: unsupported SASL mechanism "` + long[:64] + `..."`},
		{"PLUS without TLS", MechanismSCRAMPlus, plusFirst, false,
			"auth: SCRAM protocol violation: client selected SCRAM-SHA-256-PLUS, which was not offered"},
		{"PLUS without binding", MechanismSCRAMPlus, "n,,n=,r=abc", true,
			"auth: SCRAM protocol violation: client selected SCRAM-SHA-256-PLUS but sent no channel binding"},
		{"binding without PLUS", MechanismSCRAM, plusFirst, true,
			"auth: SCRAM protocol violation: client selected SCRAM-SHA-256 but sent channel binding data"},
		{"downgrade", MechanismSCRAM, "y,,n=,r=abc", true,
			"auth: SCRAM channel binding failed: channel binding negotiation error (possible downgrade attack)"},
		{"y without TLS", MechanismSCRAM, "y,,n=,r=abc", false, ""},
		{"user and extension", MechanismSCRAM, "n,,n=someone,r=abc,x=ext", false, ""},
		{"PLUS", MechanismSCRAMPlus, plusFirst, true, ""},
	}
	for _, tt := range tests {
		for _, late := range []bool{false, true} {
			var cb []byte
			if tt.tls {
				cb = []byte("certificate hash")
			}
			s := NewServerSCRAM(NewVerifier("pw", []byte("some salt"), 1), cb)
			out, err := start(s, tt.mech, []byte(tt.msg), late)
			if tt.want == "" {
				require.NoError(t, err, "%s (late %v)", tt.name, late)
				require.True(t, bytes.HasPrefix(out, []byte("r=abc")), "%s: %q", tt.name, out)
				continue
			}
			require.EqualError(t, err, tt.want, "%s (late %v)", tt.name, late)
			require.Nil(t, out)
		}
	}
}

func TestServerSCRAMClientFinalErrors(t *testing.T) {
	proof := b64.EncodeToString(make([]byte, keyLen))
	long := b64.EncodeToString(bytes.Repeat([]byte("b"), 150))
	other := b64.EncodeToString([]byte("p=" + cbNameTLSServerEndPoint + ",,other hash"))
	tests := []struct{ name, first, msg, want string }{
		{"empty", "", "", "auth: SCRAM protocol violation: empty message"},
		{"not UTF-8", "", "c=biws,r=@N,x=\xc3,p=@P", "auth: SCRAM protocol violation: message is not UTF-8 text"},
		{"NUL", "", "c=biws,r=@N,x=\x00,p=@P", "auth: SCRAM protocol violation: message is not UTF-8 text"},
		{"junk", "", "hello", `auth: SCRAM protocol violation: malformed attribute "hello"`},
		{"trailing comma", "", "c=biws,r=@N,p=@P,", `auth: SCRAM protocol violation: malformed attribute ""`},
		{"no channel binding", "", "r=@N,p=@P", `auth: SCRAM protocol violation: expected attribute 'c', got 'r'`},
		{"channel binding not base64", "", "c=b!ws,r=@N,p=@P", "auth: SCRAM protocol violation: channel binding is not base64"},
		{"line break in channel binding", "", "c=bi\nws,r=@N,p=@P", "auth: SCRAM protocol violation: channel binding is not base64"},
		{"channel binding only", "", "c=biws", `auth: SCRAM protocol violation: missing attribute 'r'`},
		{"no nonce", "", "c=biws,p=@P", `auth: SCRAM protocol violation: expected attribute 'r', got 'p'`},
		{"no proof", "", "c=biws,r=@N", "auth: SCRAM protocol violation: client-final-message does not end with a proof"},
		{"proof not last", "", "c=biws,r=@N,p=@P,x=y", "auth: SCRAM protocol violation: client-final-message does not end with a proof"},
		{"proof not base64", "", "c=biws,r=@N,p=" + proof[1:], "auth: SCRAM protocol violation: client proof: not base64"},
		{"short proof", "", "c=biws,r=@N,p=AAAA", "auth: SCRAM protocol violation: client proof: decodes to 3 bytes, want 32"},
		{"long proof", "", "c=biws,r=@N,p=" + long, "auth: SCRAM protocol violation: client proof: decodes to 150 bytes, want 32"},
		{"wrong header", "", "c=eSws,r=@N,p=@P", "auth: SCRAM protocol violation: channel binding attribute does not repeat the GS2 header"},
		{"long channel binding", "", "c=" + long + ",r=@N,p=@P",
			"auth: SCRAM protocol violation: channel binding attribute does not repeat the GS2 header"},
		{"client nonce only", "", "c=biws,r=abc,p=@P", "auth: SCRAM protocol violation: nonce does not match"},
		{"nonce longer", "", "c=biws,r=@Nx,p=@P", "auth: SCRAM protocol violation: nonce does not match"},
		{"wrong proof", "", "c=biws,r=@N,p=@P", "auth: password authentication failed"},
		{"wrong proof after extensions", "", "c=biws,r=@N,x=1,y=2,z=3,p=@P", "auth: password authentication failed"},
		{"y header", "y,,n=,r=abc", "c=eSws,r=@N,p=@P", "auth: password authentication failed"},
		{"y sent as n", "y,,n=,r=abc", "c=biws,r=@N,p=@P",
			"auth: SCRAM protocol violation: channel binding attribute does not repeat the GS2 header"},
		{"other binding data", plusFirst, "c=" + other + ",r=@N,p=@P", "auth: SCRAM channel binding failed: channel binding check failed"},
		{"binding data left out", plusFirst, "c=" + b64.EncodeToString([]byte("p=tls-server-end-point,,")) + ",r=@N,p=@P",
			"auth: SCRAM channel binding failed: channel binding check failed"},
		{"long binding data", plusFirst, "c=" + long + ",r=@N,p=@P", "auth: SCRAM channel binding failed: channel binding check failed"},
		{"right binding data", plusFirst, "c=" + base64.StdEncoding.EncodeToString([]byte("p=tls-server-end-point,,certificate hash")) +
			",r=@N,p=@P", "auth: password authentication failed"},
	}
	for _, tt := range tests {
		mech, first, cb := MechanismSCRAM, "n,,n=,r=abc", []byte(nil)
		if tt.first != "" {
			first = tt.first
		}
		if strings.HasPrefix(first, "p=") {
			mech, cb = MechanismSCRAMPlus, []byte("certificate hash")
		}
		s := NewServerSCRAM(NewVerifier("pw", []byte("some salt"), 1), cb)
		sf, err := s.Start(mech, []byte(first))
		require.NoError(t, err, tt.name)
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(sf), "r="), ",")
		msg := strings.NewReplacer("@N", nonce, "@P", proof).Replace(tt.msg)
		out, err := s.Finish([]byte(msg))
		require.EqualError(t, err, tt.want, tt.name)
		require.Nil(t, out)
		require.False(t, s.Done())
		require.Nil(t, s.ClientKey())
	}
}
