package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one measurement of the table.
type Row struct {
	// Key identifies the measurement independently of the sizes, e.g.
	// "throughput/commit-1s-vs-raw".
	Key string
	// Name describes it for people.
	Name string
	// Sluice and Baseline are the figures as printed; Baseline is "-" when there
	// is none.
	Sluice, Baseline string
	// SluiceValue and BaselineValue are the figures as numbers, in Unit
	// (messages/s, seconds or bytes); BaselineValue is NaN when there is none.
	SluiceValue, BaselineValue float64
	Unit                       string
	// Ratio is SluiceValue / BaselineValue, NaN when there is no baseline.
	Ratio float64
	// Target is the goal as printed ("" when there is none) and Result is "pass",
	// "FAIL" or "" accordingly.
	Target, Result string
}

// Table is the result of a run.
type Table struct {
	// Header describes the run: sizes, repeats, machine.
	Header []string
	Rows   []Row
}

// Row returns the row with the given key.
func (t *Table) Row(key string) (Row, bool) {
	i := slices.IndexFunc(t.Rows, func(r Row) bool { return r.Key == key })
	if i < 0 {
		return Row{}, false
	}
	return t.Rows[i], true
}

// Failed returns the rows whose target does not hold.
func (t *Table) Failed() []Row {
	var out []Row
	for _, r := range t.Rows {
		if r.Result == resultFail {
			out = append(out, r)
		}
	}
	return out
}

const (
	resultPass = "pass"
	resultFail = "FAIL"
)

// WriteTo prints the table as aligned plain text.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, h := range t.Header {
		b.WriteString("# " + h + "\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tsluice\tbaseline\tratio\ttarget\tresult")
	for _, r := range t.Rows {
		ratio := "-"
		if !math.IsNaN(r.Ratio) {
			ratio = fmt.Sprintf("%.3f", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Sluice, dash(r.Baseline), ratio, dash(r.Target), dash(r.Result))
	}
	if err := tw.Flush(); err != nil {
		return 0, err
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// judge sets Result from a target that the ratio (or the value) must meet.
func atLeast(r *Row, min float64) {
	r.Target = fmt.Sprintf(">= %.2f", min)
	r.Result = verdict(r.Ratio >= min)
}

func atMost(r *Row, max float64) {
	r.Target = fmt.Sprintf("<= %.2f", max)
	r.Result = verdict(r.Ratio <= max)
}

func verdict(ok bool) string {
	if ok {
		return resultPass
	}
	return resultFail
}

// Formatting of figures.

func fmtRate(msgsPerSec float64, msgBytes int) string {
	return fmt.Sprintf("%s msg/s (%.1f MB/s)", group(int64(math.Round(msgsPerSec))), msgsPerSec*float64(msgBytes)/1e6)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func fmtBytes(n float64) string {
	return fmt.Sprintf("%.1f MB", n/(1<<20))
}

// group writes n with thousands separators: 1234567 -> 1,234,567.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
