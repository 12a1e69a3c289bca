// Package bench measures what Sluice costs over franz-go, the Kafka client it is
// built on, on the embedded broker: passthrough throughput next to a plain franz-go
// copy program, the cost of commits, whole `sluice run` processes end to end
// (wall time, CPU, start-up to the first output), exactly-once against
// at-least-once (throughput, latency to a read_committed reader), group mode
// (failover after SIGKILL, planned scale-out, throughput with more containers), the
// time to read the checkpoint topic at start, recovery after SIGKILL, and the
// memory of a job that falls behind. It is what
// `go run ./cmd/sluice-bench` runs; docs/PERFORMANCE.md explains the measurements and
// records the results.
//
// Everything measured runs as its own process: the broker (`sluice broker`), Sluice
// (`sluice run --exit-when-caught-up`) and the baselines (hidden modes of the bench
// binary, see Main), so that no two of them share a Go runtime. Run orchestrates them
// and returns a Table; Main is the command line.
package bench
