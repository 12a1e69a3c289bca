package filesystem

import (
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		"Partition 0": "Partition%200",
		"a-b":         "a%2Db",
		"A.z_9":       "A.z_9",
		"%":           "%25",
		"a/b\\c":      "a%2Fb%5Cc",
		"é":           "%C3%A9",
		"\x00\xff":    "%00%FF",
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
		if got, ok := unescape(want); !ok || got != in {
			t.Errorf("unescape(%q) = %q, %v; want %q", want, got, ok, in)
		}
	}
	for _, bad := range []string{"a b", "a-b", "%", "%2", "%2d", "%zz", "%41", "%2E", "a%"} {
		if got, ok := unescape(bad); ok {
			t.Errorf("unescape(%q) = %q, want rejected", bad, got)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"Partition 0", "a-b-c", "%41", "..", "täsk", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escape(s)
		if strings.ContainsFunc(e, func(r rune) bool { return r != '%' && (r > 0x7f || !safe(byte(r))) }) {
			t.Fatalf("escape(%q) = %q holds unsafe characters", s, e)
		}
		if strings.Contains(e, "-") {
			t.Fatalf("escape(%q) = %q holds a dash", s, e)
		}
		if got, ok := unescape(e); !ok || got != s {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, got, ok)
		}
		// unescape accepts only escape's output.
		if u, ok := unescape(s); ok && escape(u) != s {
			t.Fatalf("unescape(%q) = %q, which escapes to %q", s, u, escape(u))
		}
	})
}
