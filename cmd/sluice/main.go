// Command sluice runs Samza-style stream jobs, inspects and rewrites their checkpoints,
// and serves an embedded Kafka-protocol broker for development. See the README.
//
// Unless the GOGC environment variable says otherwise, the binary runs Go's garbage
// collector at GOGC=200 rather than 100: a stream job's live heap is small and bounded
// (a few polled batches per task), and collecting half as often saves about a tenth of
// its CPU for a few tens of megabytes (docs/PERFORMANCE.md).
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/sluice-streams/sluice/cli"
)

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(200)
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
