package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// FuzzReadRecords checks `sluice topic produce`'s input parser: every non-empty line
// is one record, in order, and key + separator + value gives the line back; a line
// without the separator is an error naming that line, never a record dropped.
func FuzzReadRecords(f *testing.F) {
	f.Add("a\nb\n", "")
	f.Add("k:v\n\nk2:v2:more", ":")
	f.Add("/home {\"page\":\"/home\"}\r\nnone", " ")
	f.Fuzz(func(t *testing.T, in, sep string) {
		recs, err := readRecords(strings.NewReader(in), "input", "t", sep)
		var lines []string
		for _, l := range strings.Split(in, "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if err != nil {
			if sep == "" {
				t.Fatalf("error without a separator: %v", err)
			}
			for i, l := range strings.Split(in, "\n") {
				if l != "" && !strings.Contains(l, sep) {
					if want := fmt.Sprintf("input, line %d: ", i+1); !strings.Contains(err.Error(), want) {
						t.Fatalf("error %q does not name the first bad line (%q)", err, want)
					}
					return
				}
			}
			t.Fatalf("error %v, but every line has the separator", err)
		}
		if len(recs) != len(lines) {
			t.Fatalf("%d records from %d lines", len(recs), len(lines))
		}
		for i, r := range recs {
			got := string(r.Value)
			if sep != "" {
				got = string(r.Key) + sep + got
			} else if r.Key != nil {
				t.Fatalf("record %d has a key without a separator", i)
			}
			if got != lines[i] || r.Topic != "t" || sep != "" && bytes.Contains(r.Key, []byte(sep)) {
				t.Fatalf("record %d = %q|%q, line %q", i, r.Key, r.Value, lines[i])
			}
		}
	})
}
