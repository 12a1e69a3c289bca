package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{5, 5, 1, 9, 7}, 5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if xs[0] != 3 {
		t.Error("median reordered its argument")
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -5000000: "-5,000,000"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
	if got := fmtRate(1_500_000, 100); got != "1,500,000 msg/s (150.0 MB/s)" {
		t.Errorf("fmtRate = %q", got)
	}
	for d, want := range map[time.Duration]string{83 * time.Millisecond: "83 ms", 2250 * time.Millisecond: "2.25 s", 42 * time.Second: "42.0 s"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	r1 := Row{Key: "a", Name: "first", Sluice: "9", Baseline: "10", SluiceValue: 9, BaselineValue: 10, Ratio: 0.9}
	atLeast(&r1, 0.95)
	r2 := Row{Key: "b", Name: "second", Sluice: "1", SluiceValue: 1, BaselineValue: math.NaN(), Ratio: math.NaN(), Target: "< 2", Result: verdict(true)}
	tab := &Table{Header: []string{"hello"}, Rows: []Row{r1, r2}}
	if r1.Result != resultFail || r1.Target != ">= 0.95" {
		t.Errorf("atLeast: %q %q", r1.Target, r1.Result)
	}
	if f := tab.Failed(); len(f) != 1 || f[0].Key != "a" {
		t.Errorf("Failed() = %v", f)
	}
	if _, ok := tab.Row("b"); !ok {
		t.Error("Row(b) not found")
	}
	var b bytes.Buffer
	if _, err := tab.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "# hello" || !strings.HasPrefix(lines[1], "measurement") ||
		!strings.Contains(lines[2], "0.900") || !strings.HasSuffix(lines[2], "FAIL") || !strings.HasSuffix(lines[3], "pass") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestPayloadsDiffer(t *testing.T) {
	p := newPayloads(100)
	a, b := p.value(), p.value()
	if len(a) != 100 || len(b) != 100 || bytes.Equal(a, b) {
		t.Errorf("values %x and %x", a, b)
	}
}
