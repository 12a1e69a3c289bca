package properties

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Entry is one key/value pair of a properties file.
type Entry struct {
	Key   string
	Value string
	Line  int // 1-based line on which the entry (its key) starts
}

// SyntaxError reports malformed input and the 1-based line it is on.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// ParseMap reads a properties file into a map. When a key appears more than once the
// last value wins.
func ParseMap(r io.Reader) (map[string]string, error) {
	entries, err := Parse(r)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		m[e.Key] = e.Value
	}
	return m, nil
}

// Parse reads a properties file and returns its entries in file order, duplicates
// included. Malformed input gives a *SyntaxError; read errors are returned as is.
func Parse(r io.Reader) ([]Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var (
		entries []Entry
		ln      logicalLine
		cont    bool // the previous physical line ended in a continuation
	)
	flush := func() error {
		e, err := ln.entry()
		if err != nil {
			return err
		}
		entries = append(entries, e)
		ln.text = ln.text[:0]
		return nil
	}
	for pos, num := 0, 1; pos < len(data); num++ {
		end := len(data)
		if i := bytes.IndexAny(data[pos:], "\r\n"); i >= 0 {
			end = pos + i
		}
		line := data[pos:end]
		// Java looks for the end of input right after the first terminator
		// character, so "\r\n" at the very end does not count as reaching it.
		atEOF := end+1 >= len(data)
		pos = end + 1
		if pos < len(data) && data[end] == '\r' && data[pos] == '\n' {
			pos++
		}
		if !utf8.Valid(line) {
			return nil, &SyntaxError{Line: num, Msg: "invalid UTF-8"}
		}

		s := bytes.TrimLeft(line, " \t\f")
		continued := cont
		cont = false
		switch {
		case len(s) == 0:
			// A blank line ends a continued entry and is otherwise skipped.
			if continued && len(ln.text) > 0 {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			continue
		case len(ln.text) == 0 && (s[0] == '#' || s[0] == '!'):
			continue // comment
		case len(ln.text) == 0:
			ln.line, ln.starts = num, ln.starts[:0]
		}
		ln.starts = append(ln.starts, len(ln.text))
		ln.text = append(ln.text, s...)
		if trailingBackslashes(s)%2 == 1 {
			ln.text = ln.text[:len(ln.text)-1]
			if !atEOF {
				cont = true
				continue
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if cont && len(ln.text) > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// logicalLine is an entry's text with its continuations joined.
type logicalLine struct {
	text   []byte
	line   int   // line number of the first physical line
	starts []int // starts[i] is where physical line line+i begins in text
}

// lineAt returns the line number of the byte at offset off of the text.
func (l *logicalLine) lineAt(off int) int {
	n := l.line
	for i, s := range l.starts {
		if s <= off {
			n = l.line + i
		}
	}
	return n
}

// entry splits the line into its unescaped key and value.
func (l *logicalLine) entry() (Entry, error) {
	keyEnd, valStart := split(l.text)
	key, err := unescape(l.text[:keyEnd])
	if err != nil {
		return Entry{}, &SyntaxError{Line: l.lineAt(err.off), Msg: err.msg}
	}
	value, err := unescape(l.text[valStart:])
	if err != nil {
		return Entry{}, &SyntaxError{Line: l.lineAt(valStart + err.off), Msg: err.msg}
	}
	return Entry{Key: key, Value: value, Line: l.line}, nil
}

// split returns the end of the key and the start of the value in a logical line.
func split(s []byte) (keyEnd, valStart int) {
	keyEnd, valStart = len(s), len(s)
	escaped, sep := false, false
	for i, c := range s {
		if !escaped && (c == '=' || c == ':' || isSpace(c)) {
			keyEnd, valStart, sep = i, i+1, c == '=' || c == ':'
			break
		}
		escaped = c == '\\' && !escaped
	}
	for ; valStart < len(s); valStart++ {
		switch c := s[valStart]; {
		case isSpace(c):
		case !sep && (c == '=' || c == ':'):
			sep = true
		default:
			return keyEnd, valStart
		}
	}
	return keyEnd, valStart
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

func trailingBackslashes(s []byte) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// escapeError is a bad escape at byte offset off of the text being unescaped.
type escapeError struct {
	off int
	msg string
}

// unescape decodes the escapes in a key or value.
func unescape(s []byte) (string, *escapeError) {
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s), nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 == len(s) {
			break // unreachable: Parse drops an unpaired backslash at the end of a line
		}
		switch c = s[i+1]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, n, err := decodeU(s, i)
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
			i += n
			continue
		default:
			b.WriteByte(c) // the first byte of c; the rest are copied as they come
		}
		i += 2
	}
	return b.String(), nil
}

// decodeU decodes the \uXXXX escape at s[i:], or a surrogate pair of two of them,
// returning the rune and the number of bytes used.
func decodeU(s []byte, i int) (rune, int, *escapeError) {
	r, ok := hex4(s, i)
	if !ok {
		return 0, 0, malformed(s, i)
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, nil
	}
	if r < 0xdc00 && bytes.HasPrefix(s[i+6:], []byte(`\u`)) {
		lo, ok := hex4(s, i+6)
		if !ok {
			return 0, 0, malformed(s, i+6)
		}
		if 0xdc00 <= lo && lo <= 0xdfff {
			return utf16.DecodeRune(r, lo), 12, nil
		}
	}
	return 0, 0, &escapeError{i, fmt.Sprintf(`unpaired surrogate "\u%04X"`, r)}
}

// hex4 decodes the four hex digits of the \uXXXX escape at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if len(s)-i < 6 {
		return 0, false
	}
	var r rune
	for _, c := range s[i+2 : i+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// malformed reports the bad \uXXXX escape at s[i:], quoting up to four characters
// after the "\u".
func malformed(s []byte, i int) *escapeError {
	rest := s[i+2:]
	n := 0
	for k := 0; k < 4 && n < len(rest); k++ {
		_, size := utf8.DecodeRune(rest[n:])
		n += size
	}
	q := strconv.Quote(string(rest[:n]))
	return &escapeError{i, fmt.Sprintf(`malformed \uXXXX escape "\u%s"`, q[1:len(q)-1])}
}
