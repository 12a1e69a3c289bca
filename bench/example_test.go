package bench_test

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/sluice-streams/sluice/bench"
)

// Run the benchmark with tiny sizes and print its table; `go run ./cmd/sluice-bench
// -quick` does the same from the command line, and without -quick measures at the
// sizes of docs/PERFORMANCE.md.
func ExampleRun() {
	o := bench.Quick()
	o.Progress = os.Stderr
	t, err := bench.Run(context.Background(), o)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := t.WriteTo(os.Stdout); err != nil {
		fmt.Println(err)
	}
	for _, r := range t.Failed() {
		fmt.Printf("target missed: %s (%s)\n", r.Name, r.Target)
	}
}

func ExampleTable_WriteTo() {
	t := &bench.Table{Rows: []bench.Row{
		{Name: "passthrough, commits every 1s / raw franz-go", Sluice: "1,450,000 msg/s", Baseline: "1,500,000 msg/s (raw)",
			Ratio: 1_450_000.0 / 1_500_000, Target: ">= 0.90", Result: "pass"},
		{Name: "recovery: SIGKILL, restart to first output", Sluice: "83 ms", Ratio: math.NaN(), Target: "< 1 s", Result: "pass"},
	}}
	if _, err := t.WriteTo(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// measurement                                   sluice           baseline               ratio  target   result
	// passthrough, commits every 1s / raw franz-go  1,450,000 msg/s  1,500,000 msg/s (raw)  0.967  >= 0.90  pass
	// recovery: SIGKILL, restart to first output    83 ms            -                      -      < 1 s    pass
}
