package properties

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
)

var parseTests = []struct {
	name string
	in   string
	want []Entry
}{
	// Separators.
	{"equals", "key=value", []Entry{{"key", "value", 1}}},
	{"equals spaced", "key = value", []Entry{{"key", "value", 1}}},
	{"colon", "key:value", []Entry{{"key", "value", 1}}},
	{"colon spaced", "key : value", []Entry{{"key", "value", 1}}},
	{"space", "key value", []Entry{{"key", "value", 1}}},
	{"tab", "key\tvalue", []Entry{{"key", "value", 1}}},
	{"form feed", "key\fvalue", []Entry{{"key", "value", 1}}},
	{"mixed whitespace", "key \t\f=\f\t value", []Entry{{"key", "value", 1}}},
	{"only one separator", "key == value", []Entry{{"key", "= value", 1}}},
	{"equals then colon", "key =: value", []Entry{{"key", ": value", 1}}},
	{"space then colon", "key : : value", []Entry{{"key", ": value", 1}}},
	{"separators in value", "key=a=b:c d", []Entry{{"key", "a=b:c d", 1}}},
	{"key only", "key", []Entry{{"key", "", 1}}},
	{"key only trailing space", "key   ", []Entry{{"key", "", 1}}},
	{"empty value", "key=", []Entry{{"key", "", 1}}},
	{"empty key", "=value", []Entry{{"", "value", 1}}},
	{"empty key colon", ":value", []Entry{{"", "value", 1}}},
	{"empty key and value", "=", []Entry{{"", "", 1}}},
	{"leading whitespace", " \t\fkey=value", []Entry{{"key", "value", 1}}},
	{"trailing whitespace kept", "key=value \t", []Entry{{"key", "value \t", 1}}},
	{"non-ASCII", "ключ=значение 😀", []Entry{{"ключ", "значение 😀", 1}}},
	{"byte order mark kept", "\uFEFFkey=v", []Entry{{"\uFEFFkey", "v", 1}}},

	// Comments and blank lines.
	{"hash comment", "# comment\nkey=value", []Entry{{"key", "value", 2}}},
	{"bang comment", "! comment\nkey=value", []Entry{{"key", "value", 2}}},
	{"indented comment", " \t# comment\nkey=value", []Entry{{"key", "value", 2}}},
	{"comment chars in value", "key=v # not ! a comment", []Entry{{"key", "v # not ! a comment", 1}}},
	{"comment chars in key", "a#b!c=v", []Entry{{"a#b!c", "v", 1}}},
	{"comment never continues", "# comment \\\nkey=value", []Entry{{"key", "value", 2}}},
	{"comment with even backslashes", "! x\\\\\nkey=value", []Entry{{"key", "value", 2}}},
	{"blank lines", "\n\n \t\f\n\nkey=value\n\n", []Entry{{"key", "value", 5}}},
	{"empty input", "", nil},
	{"only comments", "#a\n!b\n", nil},

	// Line terminators.
	{"LF", "a=1\nb=2\n", []Entry{{"a", "1", 1}, {"b", "2", 2}}},
	{"CRLF", "a=1\r\nb=2\r\n", []Entry{{"a", "1", 1}, {"b", "2", 2}}},
	{"CR", "a=1\rb=2\r", []Entry{{"a", "1", 1}, {"b", "2", 2}}},
	{"mixed", "a=1\r\n\rb=2\n\r\nc=3", []Entry{{"a", "1", 1}, {"b", "2", 3}, {"c", "3", 5}}},
	{"LF CR is two lines", "a=1\n\rb=2", []Entry{{"a", "1", 1}, {"b", "2", 3}}},

	// Continuations.
	{"continuation", "key=a\\\n  b", []Entry{{"key", "ab", 1}}},
	{"continuation skips whitespace", "key=a \\\n \t\fb \\\n c", []Entry{{"key", "a b c", 1}}},
	{"continuation CRLF", "key=a\\\r\n  b\r\nc=d", []Entry{{"key", "ab", 1}, {"c", "d", 3}}},
	{"continuation CR", "key=a\\\r  b\rc=d", []Entry{{"key", "ab", 1}, {"c", "d", 3}}},
	{"even backslashes", "key=a\\\\\nb=c", []Entry{{"key", `a\`, 1}, {"b", "c", 2}}},
	{"odd backslashes", "key=a\\\\\\\n b", []Entry{{"key", `a\b`, 1}}},
	{"four backslashes", "key=a\\\\\\\\\nb", []Entry{{"key", `a\\`, 1}, {"b", "", 2}}},
	{"continued key", "ke\\\n  y=v", []Entry{{"key", "v", 1}}},
	{"continued before separator", "key\\\n  =v", []Entry{{"key", "v", 1}}},
	{"continuation line starting with hash", "key=a\\\n  #b", []Entry{{"key", "a#b", 1}}},
	{"continuation at EOF", "key=a\\", []Entry{{"key", "a", 1}}},
	{"continuation then newline at EOF", "key=a\\\n", []Entry{{"key", "a", 1}}},
	{"continuation then CRLF at EOF", "key=a\\\r\n", []Entry{{"key", "a", 1}}},
	{"continuation onto blank line", "key=a\\\n\nb=c", []Entry{{"key", "a", 1}, {"b", "c", 3}}},
	{"continuation onto whitespace line", "key=a\\\n \t \nb=c", []Entry{{"key", "a", 1}, {"b", "c", 3}}},
	{"continuation into escape", "key=\\u00\\\n  41", []Entry{{"key", "A", 1}}},
	{"lone backslash line", "\\\nkey=v", []Entry{{"key", "v", 2}}},
	{"lone backslash then comment", "\\\n#c\nkey=v", []Entry{{"key", "v", 3}}},
	{"lone backslash at EOF", "\\", []Entry{{"", "", 1}}},
	{"multi-line value line numbers", "a=1\nb=x\\\n y\\\n z\nc=3", []Entry{{"a", "1", 1}, {"b", "xyz", 2}, {"c", "3", 5}}},

	// Escapes.
	{"control escapes", `key=\t\n\r\f`, []Entry{{"key", "\t\n\r\f", 1}}},
	{"unicode escape", `key=\u0041`, []Entry{{"key", "A", 1}}},
	{"unicode escape lower hex", `key=\u00e9\u00E9`, []Entry{{"key", "éé", 1}}},
	{"unicode escape NUL", `key=\u0000`, []Entry{{"key", "\x00", 1}}},
	{"escape in key", `\u0041\tb=v`, []Entry{{"A\tb", "v", 1}}},
	{"escaped space in key", `tasknames.Partition\ 0.x=1234`, []Entry{{"tasknames.Partition 0.x", "1234", 1}}},
	{"escaped separators in key", `a\=b\:c\ d=v`, []Entry{{"a=b:c d", "v", 1}}},
	{"escaped comment chars", `\#a\!=v`, []Entry{{"#a!", "v", 1}}},
	{"escaped leading space in value", `key=\  v`, []Entry{{"key", "  v", 1}}},
	{"escaped backslash", `key=a\\b`, []Entry{{"key", `a\b`, 1}}},
	{"escaped backslash before separator", `a\\=b`, []Entry{{`a\`, "b", 1}}},
	{"other escapes drop backslash", `key=\a\b\x\é`, []Entry{{"key", "abxé", 1}}},
	{"surrogate pair", `\uD83D\uDE00=\ud83d\ude00`, []Entry{{"😀", "😀", 1}}},
	{"max code point", `k=\uDBFF\uDFFF`, []Entry{{"k", "\U0010FFFF", 1}}},

	// Duplicates are kept in order.
	{"duplicates", "a=1\nb=2\na=3", []Entry{{"a", "1", 1}, {"b", "2", 2}, {"a", "3", 3}}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tt.in, fmtEntries(got), fmtEntries(tt.want))
			}
		})
	}
}

func fmtEntries(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "{%q %q line %d}", e.Key, e.Value, e.Line)
	}
	return "[" + b.String() + "]"
}

func TestParseMap(t *testing.T) {
	got, err := ParseMap(strings.NewReader("a=1\nb=2\na=3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "3", "b": "2"}
	if !maps.Equal(got, want) {
		t.Errorf("ParseMap got %q, want %q", got, want)
	}
}

var parseErrorTests = []struct {
	name string
	in   string
	want string
}{
	{"malformed hex", "a=1\nb=\\u12G4", `line 2: malformed \uXXXX escape "\u12G4"`},
	{"short at EOF", "a=1\n\nb=x\\u12", `line 3: malformed \uXXXX escape "\u12"`},
	{"bare u", `k=\u`, `line 1: malformed \uXXXX escape "\u"`},
	{"short before space", `k=\u12 34`, `line 1: malformed \uXXXX escape "\u12 3"`},
	{"quoted non-printable", "k=\\u1\x00é", `line 1: malformed \uXXXX escape "\u1\x00é"`},
	{"in key", "#c\n\\uZZZZ=1", `line 2: malformed \uXXXX escape "\uZZZZ"`},
	{"CRLF line count", "a=1\r\nb=2\r\n\\u12=3", `line 3: malformed \uXXXX escape "\u12"`},
	{"CR line count", "a=1\rb=2\r\r\\u12=3", `line 4: malformed \uXXXX escape "\u12"`},
	{"on continuation line", "a=1\nk=x\\\n  \\u12G4", `line 3: malformed \uXXXX escape "\u12G4"`},
	{"value after continued key", "k\\\n ey\\\n =\\\n \\uXYZW", `line 4: malformed \uXXXX escape "\uXYZW"`},
	{"lone high surrogate", `k=\uD83D`, `line 1: unpaired surrogate "\uD83D"`},
	{"lone low surrogate", `k=\uDE00\uD83D`, `line 1: unpaired surrogate "\uDE00"`},
	{"high then non-surrogate", `k=\uD83D\u0041`, `line 1: unpaired surrogate "\uD83D"`},
	{"high then literal", `k=\uD83Dx`, `line 1: unpaired surrogate "\uD83D"`},
	{"high then high", `k=\uD83D\uD83D`, `line 1: unpaired surrogate "\uD83D"`},
	{"high then malformed", `k=\uD83D\uXYZW`, `line 1: malformed \uXXXX escape "\uXYZW"`},
	{"invalid UTF-8", "a=1\nb=2\nc=\xff", "line 3: invalid UTF-8"},
	{"invalid UTF-8 in comment", "a=1\n# \xc3\n", "line 2: invalid UTF-8"},
	{"truncated UTF-8", "a=\xe2\x82", "line 1: invalid UTF-8"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error %q", tt.in, fmtEntries(got), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%q) error\n got %s\nwant %s", tt.in, err, tt.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("Parse(%q) error is %T, want *SyntaxError", tt.in, err)
			}
			if _, err := ParseMap(strings.NewReader(tt.in)); err == nil || err.Error() != tt.want {
				t.Errorf("ParseMap(%q) error = %v, want %s", tt.in, err, tt.want)
			}
		})
	}
}

type failingReader struct{}

var errRead = errors.New("read failed")

func (failingReader) Read([]byte) (int, error) { return 0, errRead }

func TestParseReadError(t *testing.T) {
	if _, err := Parse(failingReader{}); !errors.Is(err, errRead) {
		t.Errorf("Parse error = %v, want %v", err, errRead)
	}
}

func TestEscapeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"job.name", "job.name"},
		{"tasknames.Partition 0.x", `tasknames.Partition\ 0.x`},
		{" lead trail ", `\ lead\ trail\ `},
		{"a=b:c", `a\=b\:c`},
		{"#a#", `\#a#`},
		{"!a!", `\!a!`},
		{`a\b`, `a\\b`},
		{"\t\n\r\f", `\t\n\r\f`},
		{"\x00\x1f\x7f\u0085", `\u0000\u001F\u007F\u0085`},
		{"\u00a0\u2028\ufeff", `\u00A0\u2028\uFEFF`},
		{"\U000E0001", `\uDB40\uDC01`},
		{"ключ é 😀", `ключ\ é\ 😀`},
		{"bad\xff", "bad\uFFFD"},
	}
	for _, tt := range tests {
		if got := EscapeKey(tt.in); got != tt.want {
			t.Errorf("EscapeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain value", "plain value"},
		{"  lead trail  ", `\  lead trail  `},
		{"=x", `\=x`},
		{":x", `\:x`},
		{"a=b:c", "a=b:c"},
		{"#x!", "#x!"},
		{`C:\dir\`, `C:\\dir\\`},
		{"a\tb\nc\rd\fe", `a\tb\nc\rd\fe`},
		{"\tlead", `\tlead`},
		{"x\x00\u2028", `x\u0000\u2028`},
		{"значение 😀", "значение 😀"},
	}
	for _, tt := range tests {
		if got := EscapeValue(tt.in); got != tt.want {
			t.Errorf("EscapeValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want string
	}{
		{"empty", nil, ""},
		{
			"space in key",
			map[string]string{"tasknames.Partition 0.systems.kafka.streams.PageViewEvent.partitions.0": "1234"},
			"tasknames.Partition\\ 0.systems.kafka.streams.PageViewEvent.partitions.0=1234\n",
		},
		{"sorted", map[string]string{"b": "2", "a": "1", "": "0"}, "=0\na=1\nb=2\n"},
		{"value with spaces", map[string]string{"k": " a b "}, "k=\\ a b \n"},
		{"url value", map[string]string{"u": "http://h:80/p?q=1#f"}, "u=http://h:80/p?q=1#f\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tt.in); err != nil {
				t.Fatalf("Write error: %v", err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("Write(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestWriteRoundTrip(t *testing.T) {
	tests := []map[string]string{
		{},
		{"": ""},
		{"": " "},
		{" ": ""},
		{"key": "value"},
		{" lead": " lead", "trail ": "trail ", " both ": " both ", "in ner": "in ner"},
		{"\t\f": "\t\f", "\n": "\r", "\r\n": "\n\r"},
		{"=": "=", ":": ":", "==": "==", "=:": ":=", "a=b": "c=d"},
		{"#": "#", "!": "!", "#x": "!y", " #": " !"},
		{`\`: `\`, `\\`: `\\\`, `a\`: `b\`, `\ `: `\u0041`},
		{"ключ": "значение", "😀": "é", "\u00a0": "\u2028", "\ufeff": "\U000E0001"},
		{"\x00": "\x7f", "\x1b[0m": "\u0085"},
		{"multi\nline": "a\\\nb\\\\\nc"},
		{"tasknames.Partition 0.systems.kafka.streams.PageViewEvent.partitions.0": "1234"},
	}
	for _, m := range tests {
		var b bytes.Buffer
		if err := Write(&b, m); err != nil {
			t.Fatalf("Write(%q) error: %v", m, err)
		}
		got, err := ParseMap(&b)
		if err != nil {
			t.Fatalf("ParseMap(Write(%q)) error: %v", m, err)
		}
		if !maps.Equal(got, m) {
			t.Errorf("ParseMap(Write(%q))\n got %q\nwant %q", m, got, m)
		}
	}
}

func TestWriteInvalidUTF8(t *testing.T) {
	for _, m := range []map[string]string{{"a\xff": "v"}, {"a": "v\xff"}} {
		var b bytes.Buffer
		if err := Write(&b, m); err == nil {
			t.Errorf("Write(%q) = nil error, want one", m)
		}
		if b.Len() != 0 {
			t.Errorf("Write(%q) wrote %q, want nothing", m, b.String())
		}
	}
}

type failingWriter struct{}

var errWrite = errors.New("write failed")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteError(t *testing.T) {
	if err := Write(failingWriter{}, map[string]string{"a": "1"}); !errors.Is(err, errWrite) {
		t.Errorf("Write error = %v, want %v", err, errWrite)
	}
}
