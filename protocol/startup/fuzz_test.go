package startup

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("\x00\x03\x00\x00user\x00app\x00database\x00app\x00\x00"))
	f.Add([]byte("\x04\xd2\x16\x2f"))
	f.Add([]byte("\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Add([]byte("\x00\x03\x00\x00user\x00"))
	f.Add([]byte("\x00\x02\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a packet with error %v", err)
			}
			return
		}
		if len(p.Params) > MaxParams {
			t.Fatalf("%d parameters accepted, limit %d", len(p.Params), MaxParams)
		}
		for _, kv := range p.Params {
			if strings.IndexByte(kv.Key, 0) >= 0 || strings.IndexByte(kv.Value, 0) >= 0 {
				t.Fatalf("parameter %q=%q contains a NUL", kv.Key, kv.Value)
			}
		}
		if p.Kind == KindCancel && len(p.CancelKey) > 256 {
			t.Fatalf("cancel key of %d bytes", len(p.CancelKey))
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	f.Add("-c search_path=public")
	f.Add("-csearch_path=a\\ b --work-mem=4MB")
	f.Add("-c")
	f.Add("-x")
	f.Add("\\")
	f.Fuzz(func(t *testing.T, opts string) {
		out, err := ParseOptions(opts)
		if err != nil {
			return
		}
		for _, p := range out {
			if p.Key == "" || strings.Contains(p.Key, "-") {
				t.Fatalf("bad key %q from %q", p.Key, opts)
			}
		}
	})
}
