// Package bench measures what Sluice costs over franz-go, the Kafka client it is
// built on, on the embedded broker: passthrough throughput next to a plain franz-go
// copy program, the cost of commits, the time to read the checkpoint topic at start,
// recovery after SIGKILL, and the memory of a job that falls behind. It is what
// `go run ./cmd/sluice-bench` runs; docs/PERFORMANCE.md explains the measurements and
// records the results.
//
// Everything measured runs as its own process: the broker (`sluice broker`), Sluice
// (`sluice run --exit-when-caught-up`) and the baselines (hidden modes of the bench
// binary, see Main), so that no two of them share a Go runtime. Run orchestrates them
// and returns a Table; Main is the command line.
package bench
