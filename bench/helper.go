package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// Hidden modes of the bench binary: the processes Run starts besides `sluice`.
const (
	modeRawCopy         = "raw-copy"
	modeRawSlow         = "raw-slow"
	modeReadCheckpoints = "read-checkpoints"
	modeSluice          = "sluice"
)

// helper runs a hidden mode; ok is false when args name none.
func helper(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	var err error
	switch args[0] {
	case modeRawCopy:
		err = rawCopy(ctx, args[1:], stdout, stderr)
	case modeRawSlow:
		err = rawSlow(ctx, args[1:], stderr)
	case modeReadCheckpoints:
		err = readCheckpoints(ctx, args[1:], stdout, stderr)
	case modeSluice:
		return cli.Main(ctx, args[1:], stdout, stderr, cli.WithTasks(Tasks())), true
	default:
		return 0, false
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice-bench %s: %v\n", args[0], err)
		return 1, true
	}
	return 0, true
}

// Tasks returns Sluice's built-in tasks plus the bench's own: "bench-slow", a
// passthrough that sleeps task.bench-slow.delay.us microseconds before each message
// it sends to task.bench-slow.output; and "bench-tag", a passthrough to
// task.bench-tag.output that stamps each message with the time it processed it (as
// the record's timestamp) and the process that did (header bench.pid).
func Tasks() map[string]task.Definition {
	tasks := builtin.Tasks()
	tasks[slowTaskClass] = task.Definition{New: newSlowTask, Check: func(cfg config.Config) error {
		_, err := newSlowTask("", cfg)
		return err
	}}
	tasks[tagTaskClass] = task.Definition{New: newTagTask, Check: func(cfg config.Config) error {
		_, err := newTagTask("", cfg)
		return err
	}}
	return tasks
}

const (
	tagTaskClass = "bench-tag"
	keyTagOutput = "task.bench-tag.output"
	headerPID    = "bench.pid"
)

type tagTask struct {
	out system.SystemStream
	pid []byte
}

func newTagTask(_ string, cfg config.Config) (task.StreamTask, error) {
	out, err := system.ParseSystemStream(cfg.GetOr(keyTagOutput, ""))
	if err != nil {
		return nil, &config.Error{Key: keyTagOutput, Value: cfg.GetOr(keyTagOutput, ""), Msg: err.Error()}
	}
	return &tagTask{out: out, pid: []byte(strconv.Itoa(os.Getpid()))}, nil
}

// Process implements task.StreamTask.
func (t *tagTask) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	return out.Send(ctx, system.OutgoingEnvelope{Stream: t.out, Partition: env.SSP.Partition, Key: env.Key, Message: env.Message,
		Headers: []system.Header{{Key: headerPID, Value: t.pid}}, Timestamp: time.Now()})
}

const (
	slowTaskClass = "bench-slow"
	keySlowOutput = "task.bench-slow.output"
	keySlowDelay  = "task.bench-slow.delay.us"
)

type slowTask struct {
	out   system.SystemStream
	delay time.Duration
}

func newSlowTask(_ string, cfg config.Config) (task.StreamTask, error) {
	out, err := system.ParseSystemStream(cfg.GetOr(keySlowOutput, ""))
	if err != nil {
		return nil, &config.Error{Key: keySlowOutput, Value: cfg.GetOr(keySlowOutput, ""), Msg: err.Error()}
	}
	us, err := cfg.Int(keySlowDelay, 0)
	if err != nil {
		return nil, fmt.Errorf("bench-slow: %w", err)
	}
	return &slowTask{out: out, delay: time.Duration(us) * time.Microsecond}, nil
}

// Process implements task.StreamTask.
func (s *slowTask) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	time.Sleep(s.delay)
	return out.Send(ctx, system.OutgoingEnvelope{Stream: s.out, Partition: env.SSP.Partition, Key: env.Key, Message: env.Message})
}

// result is what the raw-copy and read-checkpoints modes print on stdout.
type result struct {
	Records int64         `json:"records"`
	Tasks   int           `json:"tasks,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
}

func printResult(w io.Writer, r result) error {
	return json.NewEncoder(w).Encode(r)
}

// cpuProfile starts a CPU profile into path ("" does nothing) and returns its stop.
func cpuProfile(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// rawCopy is the baseline of the passthrough job: a plain franz-go program that
// reads every partition of the input from the start with ConsumePartitions and
// produces each record, key and value unchanged, to the same partition of the
// output topic (acks=all, idempotent: franz-go's defaults), until every input
// partition reached the end offset it had at start; then it flushes and exits.
func rawCopy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(modeRawCopy, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "bootstrap server")
	in := fs.String("in", "", "input topic")
	out := fs.String("out", "", "output topic")
	prof := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(*brokers),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the defaults, said out loud:
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, *in)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", *in, err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		start[o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*in: start})
	var sink errorSink
	var n int64
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				cl.Produce(ctx, &kgo.Record{Topic: *out, Partition: r.Partition, Key: r.Key, Value: r.Value}, sink.promise)
			}
			if k := len(p.Records); k > 0 {
				n += int64(k)
				if end, ok := want[p.Partition]; ok && p.Records[k-1].Offset+1 >= end {
					delete(want, p.Partition)
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err := sink.first(); err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	return printResult(stdout, result{Records: n})
}

// rawSlow is the baseline of the memory run: a plain franz-go program that reads
// every partition of the input from the start and, one record at a time, sleeps
// --delay and produces the record to the same partition of the output, until ctx
// ends. It has one loop for all partitions, so its delay is the slow task's divided
// by the partition count: together they are equally slow.
func rawSlow(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(modeRawSlow, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "bootstrap server")
	in := fs.String("in", "", "input topic")
	out := fs.String("out", "", "output topic")
	delay := fs.Duration("delay", time.Millisecond, "time per record")
	partitions := fs.Int("partitions", 1, "partitions of the input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := map[int32]kgo.Offset{}
	for p := range *partitions {
		start[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*in: start}))
	if err != nil {
		return err
	}
	defer cl.Close()
	fmt.Fprintln(stderr, "raw-slow: consuming")
	var sink errorSink
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(*delay)
			cl.Produce(ctx, &kgo.Record{Topic: *out, Partition: r.Partition, Key: r.Key, Value: r.Value}, sink.promise)
		})
		if err := sink.first(); err != nil {
			return err
		}
	}
	return nil
}

// readCheckpoints times reading a checkpoint topic. --mode=sluice times
// kafka.CheckpointManager.Start (connect, check the topic, read it to the end offset
// captured at start, keep the last record per task, decode those); --mode=raw times
// a plain franz-go client that lists the end offset and reads the partition from the
// start to it with ConsumePartitions, keeping the last value per key and decoding
// nothing. Both times include creating the client and connecting.
func readCheckpoints(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(modeReadCheckpoints, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "bootstrap server")
	topic := fs.String("topic", "", "checkpoint topic")
	job := fs.String("job", "bench", "job.name")
	mode := fs.String("mode", "sluice", "sluice or raw")
	prof := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	var r result
	switch *mode {
	case "sluice":
		r, err = readSluice(ctx, *brokers, *topic, *job)
	case "raw":
		r, err = readRaw(ctx, *brokers, *topic)
	default:
		return fmt.Errorf("--mode=%s: want sluice or raw", *mode)
	}
	if err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	return printResult(stdout, r)
}

// checkpointConfig is the configuration of the bench's checkpoint topic.
func checkpointConfig(brokers, topic, job string) config.Config {
	return config.New(map[string]string{
		"job.name":                                 job,
		"task.checkpoint.topic":                    topic,
		"task.checkpoint.replication.factor":       "1",
		"systems.kafka.samza.factory":              "kafka",
		"systems.kafka.consumer.bootstrap.servers": brokers,
		"systems.kafka.producer.bootstrap.servers": brokers,
	})
}

func readSluice(ctx context.Context, brokers, topic, job string) (result, error) {
	cfg := checkpointConfig(brokers, topic, job)
	sys, err := kafka.New("kafka", cfg, nil)
	if err != nil {
		return result{}, err
	}
	defer sys.Close()
	m, err := kafka.NewCheckpointManager(sys, cfg, nil)
	if err != nil {
		return result{}, err
	}
	began := time.Now()
	if err := m.Start(ctx); err != nil {
		return result{}, err
	}
	elapsed := time.Since(began)
	defer m.Close()
	tasks, err := m.Tasks(ctx)
	if err != nil {
		return result{}, err
	}
	return result{Tasks: len(tasks), Elapsed: elapsed}, nil
}

func readRaw(ctx context.Context, brokers, topic string) (result, error) {
	began := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return result{}, fmt.Errorf("end offset of %s: %w", topic, err)
	}
	eo, ok := ends.Lookup(topic, 0)
	if !ok {
		return result{}, fmt.Errorf("%s has no partition 0", topic)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}})
	last := map[string][]byte{}
	var n int64
	for next := int64(0); next < eo.Offset; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		if err := fetches.Err0(); err != nil {
			return result{}, err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			last[string(r.Key)] = r.Value
			next = r.Offset + 1
			n++
		})
	}
	return result{Records: n, Tasks: len(last), Elapsed: time.Since(began)}, nil
}

func parseResult(p *proc) (result, error) {
	var r result
	if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("%s printed %q, not a result: %w", p.name, p.stdout.String(), err)
	}
	return r, nil
}

// itoa is strconv.Itoa, short.
func itoa(n int) string { return strconv.Itoa(n) }
