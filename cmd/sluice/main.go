// Command sluice runs Samza-style stream jobs, inspects and rewrites their checkpoints,
// and serves an embedded Kafka-protocol broker for development. See the README.
package main

import (
	"context"
	"os"

	"github.com/sluice-streams/sluice/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
