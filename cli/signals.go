package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// stopOnSignal returns a context that is cancelled by the first SIGINT or SIGTERM: a
// clean stop (in-flight messages finish, every task is committed once more). A second
// signal exits the process at once, with exit code 1, for a stop that takes too long:
// nothing is checkpointed past what was processed, since every checkpoint write is
// atomic, and the next start resumes from the last checkpoint.
func stopOnSignal(ctx context.Context, stderr io.Writer) (context.Context, func()) {
	return stopOnSignalExit(ctx, stderr, os.Exit)
}

func stopOnSignalExit(ctx context.Context, stderr io.Writer, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "sluice: second signal (%v): exiting at once; the next start resumes from the last checkpoint\n", s)
			exit(ExitFailure)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
