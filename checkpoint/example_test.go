package checkpoint_test

import (
	"fmt"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

func ExampleEncode() {
	cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "PageViewEvent", 0): "1234",
	}}
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	b, _ := checkpoint.Encode("Partition 0", cp, checkpoint.NewID(at, 7), at)
	fmt.Println(string(b))
	_, back, _ := checkpoint.Decode(b)
	fmt.Println(back.Equal(cp))
	// Output:
	// {"version":1,"task":"Partition 0","checkpoint_id":"1795521600000-7","timestamp":"2026-11-24T12:00:00Z","offsets":[{"system":"kafka","stream":"PageViewEvent","partition":0,"offset":"1234"}]}
	// true
}
