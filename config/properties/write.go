package properties

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Write writes m as one "key=value" line per key, sorted by key, escaped so that
// ParseMap reads back exactly m. It writes nothing and returns an error if a key or
// value is not valid UTF-8.
func Write(w io.Writer, m map[string]string) error {
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		if !utf8.ValidString(k) {
			return fmt.Errorf("properties: key %q is not valid UTF-8", k)
		}
		if !utf8.ValidString(m[k]) {
			return fmt.Errorf("properties: value of key %q is not valid UTF-8", k)
		}
	}
	bw := bufio.NewWriter(w)
	for _, k := range keys {
		bw.WriteString(EscapeKey(k))
		bw.WriteByte('=')
		bw.WriteString(EscapeValue(m[k]))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// EscapeKey escapes s for use as the key of a properties line: backslashes, '=',
// ':', spaces, a leading '#' or '!', and control and other invisible characters are
// escaped. Invalid UTF-8 bytes become U+FFFD.
func EscapeKey(s string) string { return escape(s, true) }

// EscapeValue escapes s for use as the value of a properties line after any
// separator ("=", ":" or whitespace): backslashes, a leading space, '=' or ':', and
// control and other invisible characters are escaped. Invalid UTF-8 bytes become
// U+FFFD.
func EscapeValue(s string) string { return escape(s, false) }

func escape(s string, key bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case ' ', '=', ':':
			if key || i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case '#', '!':
			if key && i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		default:
			if unicode.IsPrint(r) {
				b.WriteRune(r)
				break
			}
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				fmt.Fprintf(&b, `\u%04X\u%04X`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04X`, r)
			}
		}
	}
	return b.String()
}
