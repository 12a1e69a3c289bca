package job_test

import (
	"fmt"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

func Example() {
	jc, err := job.Parse(config.New(map[string]string{
		"job.name":                    "page-views",
		"task.class":                  "passthrough",
		"task.inputs":                 "kafka.PageViewEvent",
		"systems.kafka.samza.factory": "org.apache.samza.system.kafka.KafkaSystemFactory",
		"systems.kafka.streams.PageViewEvent.samza.offset.default": "oldest",
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	t, key := jc.OffsetDefault(system.SystemStream{System: "kafka", Stream: "PageViewEvent"})
	fmt.Println(jc.Name, jc.ID, jc.SystemFactories["kafka"], jc.CommitInterval)
	fmt.Println(t, "from", key)
	// Output:
	// page-views 1 kafka 1m0s
	// oldest from systems.kafka.streams.PageViewEvent.samza.offset.default
}
