// Command sluice-bench measures what Sluice costs over plain franz-go on the
// embedded broker and prints a table: passthrough throughput against a franz-go copy
// program, the cost of commits, checkpoint reading at startup, recovery after
// SIGKILL, and memory when a job falls behind. See docs/PERFORMANCE.md.
//
//	go run ./cmd/sluice-bench            # the full run (minutes)
//	go run ./cmd/sluice-bench -quick     # a smoke test (seconds)
package main

import (
	"context"
	"os"

	"github.com/sluice-streams/sluice/bench"
)

func main() {
	os.Exit(bench.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
