package checkpointtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/checkpointtest"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/system"
)

// fileHarness is what a manager's test passes to checkpointtest.Run (through a
// function of *testing.T that makes dir with t.TempDir): a harness over the
// filesystem manager's files in dir.
func fileHarness(dir string) checkpointtest.Harness {
	return checkpointtest.Harness{
		Open: func() (checkpoint.Manager, error) {
			return filesystem.New(dir, "page-views", "1")
		},
		Corrupt: func(t *testing.T, task string) {
			m, err := filesystem.New(dir, "page-views", "1")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m.Path(task), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// Example builds the harness a manager's test gives to Run, and uses it the way the
// suite does: write with one manager, read with a new one over the same store.
func Example() {
	dir, err := os.MkdirTemp("", "checkpointtest-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// In a test: checkpointtest.Run(t, func(t *testing.T) checkpointtest.Harness {
	//	return fileHarness(t.TempDir())
	// })
	h := fileHarness(dir)

	ctx := context.Background()
	ssp := system.NewSSP("kafka", "PageViewEvent", 0)
	started := func() (checkpoint.Manager, error) {
		m, err := h.Open()
		if err != nil {
			return nil, err
		}
		return m, m.Start(ctx)
	}

	writer, err := started()
	if err != nil {
		fmt.Println(err)
		return
	}
	err = writer.Write(ctx, "Partition 0", checkpoint.New(map[system.SystemStreamPartition]string{ssp: "42"}))
	fmt.Println("write:", err, writer.Close())

	reader, err := started()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reader.Close()
	cp, err := reader.Read(ctx, "Partition 0")
	fmt.Println("read:", cp.Offsets[ssp], err)
	_, err = reader.Read(ctx, "Partition 1")
	fmt.Println("never written:", errors.Is(err, checkpoint.ErrNoCheckpoint))
	fmt.Println("can corrupt:", h.Corrupt != nil)
	// Output:
	// write: <nil> <nil>
	// read: 42 <nil>
	// never written: true
	// can corrupt: true
}
