package ops_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/ops"
)

// idle stands in for a container that has not started.
type idle struct{}

func (idle) Progress() container.Progress { return container.Progress{} }
func (idle) Stats() container.Stats       { return container.Stats{} }

func Example() {
	m := ops.NewMetrics(ops.Options{})
	// A real program sets container.Options.Events = m.Events() before
	// container.New, then m.Watch(c) and Listen with the container.
	srv, err := ops.Listen("127.0.0.1:0", idle{}, m, ops.JobInfo{Job: "pageviews", JobID: "1"}, ops.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			fmt.Println(err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %d %s", path, resp.StatusCode, body)
	}
	cancel()
	<-done
	// Output:
	// /healthz 200 ok
	// /readyz 503 not ready:
	//   the container is starting
}
