package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/broker"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
)

// The quickstart job: copy page views, checkpointed in the Kafka checkpoint topic.
const quickstartJob = `# The quickstart job, written by 'sluice quickstart'. To run it yourself, serve the
# quickstart's data on the address below again (or run 'sluice quickstart --keep-broker'):
#   sluice broker --data-dir=%[3]s --listen=%[1]s
# and then 'sluice run --config-path=%[2]s'
# and 'sluice checkpoint-tool --config-path=%[2]s' work on it.
job.name=page-view-copy
task.class=passthrough
task.inputs=kafka.PageViewEvent
task.passthrough.output=kafka.PageViewEventCopy

systems.kafka.samza.factory=org.apache.samza.system.kafka.KafkaSystemFactory
systems.kafka.consumer.bootstrap.servers=%[1]s
systems.kafka.producer.bootstrap.servers=%[1]s
systems.kafka.samza.offset.default=oldest

task.checkpoint.factory=org.apache.samza.checkpoint.kafka.KafkaCheckpointManagerFactory
task.checkpoint.system=kafka
task.checkpoint.replication.factor=1
task.commit.ms=1000
`

const (
	quickstartPartitions = 4
	quickstartEvents     = 1000
)

func (e *env) quickstart(ctx context.Context, args []string) int {
	fs, level := e.flags("quickstart", "[--data-dir=DIR] [--listen=HOST:PORT] [--keep-broker]")
	dataDir := fs.String("data-dir", ".quickstart", "where the embedded broker keeps its data; run again with the same directory to resume")
	listen := fs.String("listen", broker.DefaultListen, "address of the embedded broker; when the default is taken, a free port is used instead (port 0 always picks one)")
	keep := fs.Bool("keep-broker", false, "keep the embedded broker serving after the job, until Ctrl-C, so that other commands can use it")
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "listen" })
	log, err := e.logger(*level)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice quickstart:", err)
		return ExitUsage
	}
	fail := func(what string, err error) int {
		fmt.Fprintf(e.stderr, "sluice quickstart: %s: %v\n", what, err)
		return ExitFailure
	}

	brokerDir := filepath.Join(*dataDir, "broker")
	start := func(listen string) (*broker.Broker, error) {
		b, err := broker.New(broker.Options{Listen: listen, DataDir: brokerDir, Logger: log})
		if err != nil {
			return nil, err
		}
		return b, b.Start()
	}
	b, err := start(*listen)
	if errors.Is(err, syscall.EADDRINUSE) && !explicit {
		// The saved configuration names whatever address is used, and the closing
		// lines say how to serve it there again.
		fmt.Fprintf(e.stdout, "%s is in use, so the embedded broker listens on a free port instead.\n", *listen)
		b, err = start("127.0.0.1:0")
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w (pass --listen=127.0.0.1:0 to use a free port)", err)
		}
		return fail("start the embedded broker", err)
	}
	defer b.Close()
	addr := b.Addr()

	produced, err := quickstartEventsIn(ctx, addr)
	if err != nil {
		return fail("write sample page views", err)
	}
	cfgPath := filepath.Join(*dataDir, "page-view-copy.properties")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(quickstartJob, addr, cfgPath, brokerDir)), 0o644); err != nil {
		return fail("write the job configuration", err)
	}
	fmt.Fprintf(e.stdout, "Embedded broker on %s (data in %s).\n", addr, brokerDir)
	fmt.Fprintf(e.stdout, "Wrote %d new page views to PageViewEvent (%d partitions); it now holds %d.\n", quickstartEvents, quickstartPartitions, produced)
	fmt.Fprintf(e.stdout, "Running the job in %s until it has caught up (its log is on stderr)...\n", cfgPath)

	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fail("load the job configuration", err)
	}
	// The quickstart's job is the built-in one on the embedded broker: the program's
	// own systems (a kafka with OAUTHBEARER, say) have no part in it.
	opts := newRegistry(nil).containerOptions(log, false)
	opts.ExitWhenCaughtUp = true
	c, err := container.New(cfg, opts)
	if err != nil {
		return e.configErr("the quickstart configuration has problems", err)
	}
	if err := c.Run(ctx); err != nil {
		return fail("the job failed", err)
	}
	st := c.Stats()
	copied, err := quickstartCount(ctx, addr, "PageViewEventCopy")
	if err != nil {
		return fail("count the output", err)
	}
	fmt.Fprintf(e.stdout, "The job processed %d messages this run; PageViewEventCopy now holds %d.\n", st.Processed, copied)
	fmt.Fprintf(e.stdout, "Its checkpoints are in the topic __samza_checkpoint_page-view-copy_1.\n")
	fmt.Fprintf(e.stdout, "Run the same command again: the job resumes from its checkpoints and processes only the %d new page views.\n", quickstartEvents)
	bootstrap := ""
	if addr != broker.DefaultListen {
		bootstrap = " --bootstrap=" + addr
	}
	if !*keep {
		fmt.Fprintf(e.stdout, "To run the job yourself, serve this data again (or run the quickstart with --keep-broker)\nand run the job in another terminal:\n  sluice broker --data-dir=%s --listen=%s\n  sluice run --config-path=%s\n", brokerDir, addr, cfgPath)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "The embedded broker keeps serving on %s until you press Ctrl-C. In another terminal, try:\n  sluice topic list%s\n  sluice checkpoint-tool --config-path=%s\n", addr, bootstrap, cfgPath)
	<-ctx.Done()
	return ExitOK
}

// quickstartEventsIn creates the topics if needed, appends sample page views, and
// returns how many PageViewEvent holds.
func quickstartEventsIn(ctx context.Context, addr string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, quickstartPartitions, 1, nil, "PageViewEvent", "PageViewEventCopy")
	if err != nil {
		return 0, err
	}
	for _, r := range resp {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "TOPIC_ALREADY_EXISTS") {
			return 0, fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	pages := []string{"/", "/pricing", "/docs", "/docs/checkpoints", "/blog", "/signup"}
	recs := make([]*kgo.Record, 0, quickstartEvents)
	now := time.Now().UTC()
	for i := range quickstartEvents {
		ev, _ := json.Marshal(map[string]string{
			"page": pages[rand.IntN(len(pages))],
			"user": fmt.Sprintf("user-%d", rand.IntN(100)),
			"time": now.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
		})
		recs = append(recs, &kgo.Record{Topic: "PageViewEvent", Value: ev})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, err
	}
	return quickstartCountWith(ctx, adm, "PageViewEvent")
}

func quickstartCount(ctx context.Context, addr, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return quickstartCountWith(ctx, kadm.NewClient(cl), topic)
}

func quickstartCountWith(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}
