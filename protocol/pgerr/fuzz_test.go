package pgerr

import "testing"

func FuzzParse(f *testing.F) {
	f.Add(Fatal(ProtocolViolation, "bad").WithDetail("d").WithHint("h").Append(nil)[5:])
	f.Add([]byte("SERROR\x00C22021\x00Minvalid byte\x00\x00"))
	f.Add([]byte("S"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil || e == nil {
			return
		}
		// What parses must survive a round trip through Append.
		again, err := Parse(e.Append(nil)[5:])
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", e, err)
		}
		if *again != *e {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}
