package config_test

import (
	"fmt"

	"github.com/sluice-streams/sluice/config"
)

func Example() {
	c := config.New(map[string]string{"task.commit.ms": "5000", "task.window.ms": "soon"})
	commit, _ := c.Millis("task.commit.ms", 0)
	fmt.Println(commit)

	var p config.Problems
	_, err := c.Millis("task.window.ms", 0)
	p.AddErr(err)
	if !c.Has("job.name") {
		p.Add("job.name", "", "is required")
	}
	fmt.Println(p.Err())
	// Output:
	// 5s
	// task.window.ms=soon: not a whole number of milliseconds
	// job.name: is required
}
