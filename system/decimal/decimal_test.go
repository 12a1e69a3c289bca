package decimal_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/system/decimal"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1", 1}, {"10", 10}, {"1234567890", 1234567890}, {"9223372036854775807", math.MaxInt64},
	} {
		got, err := decimal.Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, says string }{
		{"", `"" is not an offset`},
		{"x", `"x" is not an offset`},
		{"-1", `"-1" is not an offset`},
		{"-0", `offset "-0" is not written plainly: write 0`},
		{"+5", `offset "+5" is not written plainly: write 5 (a whole number without a sign or leading zeros)`},
		{"007", `offset "007" is not written plainly: write 7`},
		{"00", `offset "00" is not written plainly: write 0`},
		{" 7", `" 7" is not an offset`},
		{"7 ", `"7 " is not an offset`},
		{"1e3", `"1e3" is not an offset`},
		{"0x1", `"0x1" is not an offset`},
		{"1.5", `"1.5" is not an offset`},
		{"1_000", `"1_000" is not an offset`},
		{"9223372036854775808", `"9223372036854775808" is not an offset`},
		{"18446744073709551616", `"18446744073709551616" is not an offset`},
		{"99999999999999999999", `"99999999999999999999" is not an offset`},
		{"٣", `"٣" is not an offset`},
	} {
		_, err := decimal.Parse(tt.in)
		se, ok := errors.AsType[*decimal.SyntaxError](err)
		if !ok || se.Offset != tt.in || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Parse(%q) = %v; want a *SyntaxError saying %q", tt.in, err, tt.says)
		}
	}
}

func TestParseSaysHowToWriteIt(t *testing.T) {
	for in, plain := range map[string]string{"+5": "5", "007": "7", "00": "0", "-0": "0", "+0012": "12", "x": "", "-1": "", "9223372036854775808": ""} {
		_, err := decimal.Parse(in)
		if se, ok := errors.AsType[*decimal.SyntaxError](err); !ok || se.Plain != plain {
			t.Errorf("Parse(%q) = %#v; want a *SyntaxError with Plain %q", in, err, plain)
		}
	}
}

func TestOffsets(t *testing.T) {
	o := decimal.Offsets{Prefix: "kafka"}
	for _, tt := range []struct {
		a, b string
		want int
	}{{"9", "10", -1}, {"10", "9", 1}, {"0", "0", 0}, {"100", "99", 1}} {
		if got, err := o.CompareOffsets(tt.a, tt.b); err != nil || got != tt.want {
			t.Errorf("CompareOffsets(%s, %s) = %d, %v; want %d (numeric, not lexical)", tt.a, tt.b, got, err, tt.want)
		}
	}
	if got, err := o.OffsetAfter("9"); err != nil || got != "10" {
		t.Errorf("OffsetAfter(9) = %q, %v", got, err)
	}
	if _, err := o.OffsetAfter("9223372036854775807"); err == nil || !strings.HasPrefix(err.Error(), "kafka: ") || !strings.Contains(err.Error(), "9223372036854775807") {
		t.Errorf("OffsetAfter(max) = %v; want an error naming the offset", err)
	}
	if d, err := o.Distance("3", "10"); err != nil || d != 7 {
		t.Errorf("Distance(3, 10) = %d, %v", d, err)
	}
	if d, err := o.Distance("10", "3"); err != nil || d != -7 {
		t.Errorf("Distance(10, 3) = %d, %v", d, err)
	}
	if d, err := o.Distance("0", "9223372036854775807"); err != nil || d != math.MaxInt64 {
		t.Errorf("Distance(0, max) = %d, %v", d, err)
	}
	for _, call := range []func() error{
		func() error { _, err := o.CompareOffsets("x1", "1"); return err },
		func() error { _, err := o.CompareOffsets("1", "x1"); return err },
		func() error { _, err := o.OffsetAfter("x1"); return err },
		func() error { _, err := o.Distance("x1", "1"); return err },
		func() error { _, err := o.Distance("1", "x1"); return err },
	} {
		if err := call(); err == nil || !strings.HasPrefix(err.Error(), "kafka: ") || !strings.Contains(err.Error(), `"x1"`) {
			t.Errorf("bad offset: error %v; want one starting kafka: and naming \"x1\"", err)
		}
	}
	if _, err := (decimal.Offsets{}).OffsetAfter("x1"); err == nil || !strings.HasPrefix(err.Error(), `"x1"`) {
		t.Errorf("without a prefix: %v", err)
	}
}

// FuzzParse: Parse accepts exactly the strings Format writes, and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "7", "+5", "007", "-0", "9223372036854775807", "9223372036854775808", "", " 1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := decimal.Parse(s)
		if err != nil {
			se, ok := errors.AsType[*decimal.SyntaxError](err)
			if !ok || se.Offset != s || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("Parse(%q) error %v is not a *SyntaxError naming the input", s, err)
			}
			if se.Plain != "" {
				if n, perr := decimal.Parse(se.Plain); perr != nil || decimal.Format(n) != se.Plain {
					t.Fatalf("Parse(%q) says to write %q, which is not plain", s, se.Plain)
				}
			}
			if m, perr := strconv.ParseInt(s, 10, 64); perr == nil && m >= 0 && decimal.Format(m) == s {
				t.Fatalf("Parse(%q) refused a plain offset: %v", s, err)
			}
			return
		}
		if n < 0 || decimal.Format(n) != s {
			t.Fatalf("Parse(%q) = %d, which Format writes as %q", s, n, decimal.Format(n))
		}
	})
}
