package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// printer is a task.Collector that prints the page counts a task sends.
type printer struct{}

func (printer) Send(_ context.Context, env system.OutgoingEnvelope) error {
	var c builtin.PageCount
	if err := json.Unmarshal(env.Message, &c); err != nil {
		return err
	}
	fmt.Printf("to %s partition %d: %s=%d\n", env.Stream, env.Partition, c.Page, c.Count)
	return nil
}

// The built-in tasks are ordinary tasks: pageview-counter counts the page views of
// its partition and sends every page's count at each window (every task.window.ms in
// a running job; called by hand here).
func Example() {
	def := builtin.Tasks()["pageview-counter"]
	cfg := config.New(map[string]string{builtin.KeyPageViewOutput: "kafka.PageViewCounts"})
	outs, err := def.Outputs(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("outputs:", outs)
	t, err := def.New("Partition 3", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	in := system.NewSSP("kafka", "PageViewEvent", 3)
	for _, v := range []string{`{"page":"/home"}`, `{"page":"/about"}`, `{"page":"/home","user":"ann"}`} {
		if err := t.Process(ctx, system.IncomingEnvelope{SSP: in, Message: []byte(v)}, printer{}, nil); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := t.(task.WindowableTask).Window(ctx, printer{}, nil); err != nil {
		fmt.Println(err)
		return
	}
	// Output:
	// outputs: [kafka.PageViewCounts]
	// to kafka.PageViewCounts partition 3: /about=1
	// to kafka.PageViewCounts partition 3: /home=2
}
