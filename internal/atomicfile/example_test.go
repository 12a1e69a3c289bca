package atomicfile_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/atomicfile"
)

func ExampleWriteFile() {
	dir, err := os.MkdirTemp("", "atomicfile-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "state")
	for _, s := range []string{"version 1", "version 2"} {
		if err := atomicfile.WriteFile(path, []byte(s), 0o644); err != nil {
			fmt.Println(err)
			return
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output: version 2
}
