package auth

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// FuzzServerSCRAM feeds arbitrary client messages to a ServerSCRAM. The
// placeholder "@N" in clientFinal is replaced by the nonce the server
// chose, so that inputs can get past the nonce check to the proof. Seeds
// live in testdata/fuzz/FuzzServerSCRAM.
func FuzzServerSCRAM(f *testing.F) {
	v := NewVerifier("secret", []byte("fixed fuzz salt!"), 1)
	cb := []byte("cert-hash")
	f.Fuzz(func(t *testing.T, mechanism string, clientFirst, clientFinal []byte, withTLS bool) {
		var binding []byte
		if withTLS {
			binding = cb
		}
		// The client-first-message sent late (after StartEmpty's empty challenge) must be
		// taken or refused as when it comes in the SASLInitialResponse.
		late := NewServerSCRAM(v, binding)
		_, lateErr := late.StartEmpty(mechanism)
		if lateErr == nil {
			_, lateErr = late.ClientFirst(clientFirst)
		}
		s := NewServerSCRAM(v, binding)
		serverFirst, err := s.Start(mechanism, clientFirst)
		if (err == nil) != (lateErr == nil) {
			t.Fatalf("Start: %v; StartEmpty then ClientFirst: %v", err, lateErr)
		}
		if err != nil {
			if serverFirst != nil || s.Done() {
				t.Fatalf("Start failed with output %q", serverFirst)
			}
			return
		}
		final := bytes.ReplaceAll(clientFinal, []byte("@N"), []byte(s.nonce))
		serverFinal, err := s.Finish(final)
		if err != nil {
			if serverFinal != nil || s.ClientKey() != nil {
				t.Fatalf("Finish failed with output %q", serverFinal)
			}
			return
		}
		// Success means the input carried a proof made with the password.
		stored := sha256.Sum256(s.ClientKey())
		if !bytes.HasPrefix(serverFinal, []byte("v=")) || !bytes.Equal(stored[:], v.StoredKey) {
			t.Fatalf("bad success output %q", serverFinal)
		}
	})
}

// FuzzParseVerifier checks that ParseVerifier never panics and that every
// verifier it accepts formats back to the same string. Seeds live in
// testdata/fuzz/FuzzParseVerifier.
func FuzzParseVerifier(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVerifier(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("ParseVerifier(%q).String() = %q", s, v.String())
		}
		if err := v.validate(); err != nil {
			t.Fatalf("parsed verifier invalid: %v", err)
		}
	})
}
