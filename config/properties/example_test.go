package properties_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/sluice-streams/sluice/config/properties"
)

func Example() {
	const file = `# A job's configuration.
job.name = page-view-counter
task.inputs: kafka.PageViewEvent
task.opts -Xmx1g \
          -Dlog=info
tasknames.Partition\ 0.offset = 1234
`
	entries, err := properties.Parse(strings.NewReader(file))
	if err != nil {
		log.Fatal(err)
	}
	m := make(map[string]string)
	for _, e := range entries {
		fmt.Printf("line %d: %q = %q\n", e.Line, e.Key, e.Value)
		m[e.Key] = e.Value
	}

	fmt.Println()
	if err := properties.Write(os.Stdout, m); err != nil {
		log.Fatal(err)
	}

	_, err = properties.Parse(strings.NewReader("a=1\nb=\\u12G4\n"))
	fmt.Println()
	fmt.Println(err)

	// Output:
	// line 2: "job.name" = "page-view-counter"
	// line 3: "task.inputs" = "kafka.PageViewEvent"
	// line 4: "task.opts" = "-Xmx1g -Dlog=info"
	// line 6: "tasknames.Partition 0.offset" = "1234"
	//
	// job.name=page-view-counter
	// task.inputs=kafka.PageViewEvent
	// task.opts=-Xmx1g -Dlog=info
	// tasknames.Partition\ 0.offset=1234
	//
	// line 2: malformed \uXXXX escape "\u12G4"
}
