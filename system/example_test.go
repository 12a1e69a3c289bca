package system_test

import (
	"fmt"

	"github.com/sluice-streams/sluice/system"
)

func ExampleParseSystemStream() {
	ss, _ := system.ParseSystemStream("kafka.page.views.v2")
	fmt.Println(ss.System, ss.Stream)
	fmt.Println(system.SystemStreamPartition{SystemStream: ss, Partition: 3})
	// Output:
	// kafka page.views.v2
	// kafka.page.views.v2#3
}
