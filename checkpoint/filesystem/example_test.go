package filesystem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/system"
)

func Example() {
	dir, err := os.MkdirTemp("", "filesystem-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	m, err := filesystem.New(dir, "page-views", "1")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	// A task with no checkpoint yet starts from its defaults.
	_, err = m.Read(ctx, "Partition 0")
	fmt.Println("no checkpoint:", errors.Is(err, checkpoint.ErrNoCheckpoint))

	ssp := system.NewSSP("kafka", "PageViewEvent", 0)
	cp := checkpoint.New(map[system.SystemStreamPartition]string{ssp: "1234"})
	if err := m.Write(ctx, "Partition 0", cp); err != nil {
		fmt.Println(err)
		return
	}
	got, err := m.Read(ctx, "Partition 0")
	fmt.Println(got.Offsets[ssp], err)
	fmt.Println(filepath.Base(m.Path("Partition 0")))

	// A damaged file is an error naming the file, never "no checkpoint".
	if err := os.WriteFile(m.Path("Partition 0"), []byte("oops"), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	_, err = m.Read(ctx, "Partition 0")
	var ce *checkpoint.CorruptError
	fmt.Println("corrupt:", errors.As(err, &ce), filepath.Base(ce.Where))
	// Output:
	// no checkpoint: true
	// 1234 <nil>
	// page%2Dviews-1-Partition%200.checkpoint
	// corrupt: true page%2Dviews-1-Partition%200.checkpoint
}
