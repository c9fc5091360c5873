package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

// FuzzServerSCRAM feeds arbitrary client messages to a ServerSCRAM. The
// placeholder "@N" in clientFinal is replaced by the nonce the server
// chose, so that inputs can get past the nonce check to the proof. A
// ServerSCRAM that ran the same messages before and was Reset must answer them
// as a new one does. Seeds live in testdata/fuzz/FuzzServerSCRAM.
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
		startErr, finishErr := fuzzExchange(t, s, mechanism, clientFirst, clientFinal)
		if (startErr == nil) != (lateErr == nil) {
			t.Fatalf("Start: %v; StartEmpty then ClientFirst: %v", startErr, lateErr)
		}
		reused := NewServerSCRAM(v, binding)
		fuzzExchange(t, reused, mechanism, clientFirst, clientFinal)
		reused.Reset(v, binding)
		againStart, againFinish := fuzzExchange(t, reused, mechanism, clientFirst, clientFinal)
		if errKind(againStart) != errKind(startErr) || errKind(againFinish) != errKind(finishErr) {
			t.Fatalf("after Reset: %v, %v; new: %v, %v", againStart, againFinish, startErr, finishErr)
		}
	})
}

// fuzzExchange runs the client's messages on s and checks what a failure or a success
// returns.
func fuzzExchange(t *testing.T, s *ServerSCRAM, mechanism string, clientFirst, clientFinal []byte) (startErr, finishErr error) {
	serverFirst, err := s.Start(mechanism, clientFirst)
	if err != nil {
		if serverFirst != nil || s.Done() {
			t.Fatalf("Start failed with output %q", serverFirst)
		}
		return err, nil
	}
	if !bytes.HasPrefix(serverFirst, []byte("r=")) || !bytes.HasPrefix(serverFirst[2:], s.nonce()) {
		t.Fatalf("server-first-message %q does not carry the nonce %q", serverFirst, s.nonce())
	}
	final := bytes.ReplaceAll(clientFinal, []byte("@N"), s.nonce())
	serverFinal, err := s.Finish(final)
	if err != nil {
		if serverFinal != nil || s.ClientKey() != nil {
			t.Fatalf("Finish failed with output %q", serverFinal)
		}
		return nil, err
	}
	// Success means the input carried a proof made with the password.
	stored := sha256.Sum256(s.ClientKey())
	if !bytes.HasPrefix(serverFinal, []byte("v=")) || !bytes.Equal(stored[:], s.v.StoredKey) {
		t.Fatalf("bad success output %q", serverFinal)
	}
	return nil, nil
}

// errKind is the sentinel err wraps ("" for nil): the kind of failure, whose text may
// quote the exchange's random nonce.
func errKind(err error) string {
	for _, kind := range []error{ErrPasswordMismatch, ErrProtocolViolation, ErrNotSupported, ErrChannelBinding} {
		if errors.Is(err, kind) {
			return kind.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
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
