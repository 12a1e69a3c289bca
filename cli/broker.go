package cli

import (
	"context"
	"fmt"

	"github.com/sluice-streams/sluice/broker"
)

func (e *env) broker(ctx context.Context, args []string) int {
	fs, level := e.flags("broker", "[--listen=127.0.0.1:9092] [--data-dir=DIR] [--sync]")
	listen := fs.String("listen", broker.DefaultListen, "host:port to serve the Kafka protocol on (loopback by default)")
	dataDir := fs.String("data-dir", "", "directory that keeps topics and offsets across restarts (empty: in memory only)")
	sync := fs.Bool("sync", false, "fsync every write, so not even a machine crash loses acknowledged records")
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	log, err := e.logger(*level)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice broker:", err)
		return ExitUsage
	}
	b, err := broker.New(broker.Options{Listen: *listen, DataDir: *dataDir, SyncWrites: *sync, Logger: log})
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice broker:", err)
		return ExitUsage
	}
	if err := b.Start(); err != nil {
		fmt.Fprintln(e.stderr, "sluice broker:", err)
		return ExitFailure
	}
	log.Info("serving the Kafka protocol", "addr", b.Addr(), "data_dir", *dataDir)
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(e.stderr, "sluice broker:", err)
		return ExitFailure
	}
	return ExitOK
}
