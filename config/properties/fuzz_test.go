package properties

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that its errors and line numbers are
// sane, and that whatever parses survives a Write and a second parse unchanged.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Lines as Parse counts them: "\r\n", "\r" and "\n" each end one.
		lines := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n"))
		entries, err := Parse(bytes.NewReader(data))
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %v is %T, want *SyntaxError", data, err, err)
			}
			if se.Line < 1 || se.Line > lines {
				t.Fatalf("Parse(%q) error %v: line not in [1, %d]", data, err, lines)
			}
			return
		}
		prev := 0
		for _, e := range entries {
			if e.Line <= prev || e.Line > lines {
				t.Fatalf("Parse(%q): entry %q=%q has line %d after line %d of %d", data, e.Key, e.Value, e.Line, prev, lines)
			}
			if !utf8.ValidString(e.Key) || !utf8.ValidString(e.Value) {
				t.Fatalf("Parse(%q): entry %q=%q is not valid UTF-8", data, e.Key, e.Value)
			}
			prev = e.Line
		}

		m, err := ParseMap(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("ParseMap(%q) error %v, but Parse succeeded", data, err)
		}
		var out bytes.Buffer
		if err := Write(&out, m); err != nil {
			t.Fatalf("Write(%q) error: %v", m, err)
		}
		written := out.String()
		got, err := ParseMap(&out)
		if err != nil {
			t.Fatalf("ParseMap(Write(%q)) error: %v\nwritten: %q", m, err, written)
		}
		if !maps.Equal(got, m) {
			t.Fatalf("ParseMap(Write(m))\n got %q\nwant %q\nwritten: %q", got, m, written)
		}
	})
}

// FuzzRoundTrip checks that any valid UTF-8 key and value survive Write and
// ParseMap, and that a line built with EscapeKey and EscapeValue parses back with
// each separator form. Its seeds are in testdata/fuzz/FuzzRoundTrip.
func FuzzRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, k, v string) {
		m := map[string]string{k: v}
		var out bytes.Buffer
		err := Write(&out, m)
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			if err == nil {
				t.Fatalf("Write(%q) succeeded with invalid UTF-8", m)
			}
			return
		}
		if err != nil {
			t.Fatalf("Write(%q) error: %v", m, err)
		}
		written := out.String()
		got, err := ParseMap(&out)
		if err != nil {
			t.Fatalf("ParseMap(Write(%q)) error: %v\nwritten: %q", m, err, written)
		}
		if !maps.Equal(got, m) {
			t.Fatalf("ParseMap(Write(m))\n got %q\nwant %q\nwritten: %q", got, m, written)
		}

		ek, ev := EscapeKey(k), EscapeValue(v)
		if strings.ContainsAny(ek+ev, "\r\n") {
			t.Fatalf("EscapeKey(%q) = %q, EscapeValue(%q) = %q: want a single line", k, ek, v, ev)
		}
		for _, sep := range []string{"=", ":", " = ", "\t: ", " ", "\t"} {
			if k == "" && strings.TrimLeft(sep, " \t") == "" {
				continue // an empty key needs an explicit separator
			}
			line := ek + sep + ev
			entries, err := Parse(strings.NewReader(line))
			if err != nil || len(entries) != 1 || entries[0] != (Entry{k, v, 1}) {
				t.Fatalf("Parse(%q) = %s, %v; want [{%q %q line 1}]", line, fmtEntries(entries), err, k, v)
			}
		}
	})
}
