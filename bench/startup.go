package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

// startup fills a checkpoint topic with CheckpointRecords records of
// CheckpointTasks tasks (round-robin, as commits of running tasks would be), exactly
// as kafka.CheckpointManager writes them, then times reading it with Sluice and
// with raw franz-go, alternating.
func (b *bencher) startup(ctx context.Context) ([]Row, error) {
	o := b.opts
	const jobName = "bench-startup"
	topic := checkpointTopic(jobName)
	if err := b.fillCheckpoints(ctx, jobName, topic); err != nil {
		return nil, err
	}
	var sluice, raw []float64
	for rep := range o.Repeats {
		for i := range 2 {
			mode := []string{"sluice", "raw"}[(i+rep)%2]
			p, err := b.start("read-"+mode, b.helper, []string{modeReadCheckpoints, "--brokers=" + b.addr, "--topic=" + topic, "--job=" + jobName, "--mode=" + mode}, o.HelperEnv, nil)
			if err != nil {
				return nil, err
			}
			if err := p.wait(10 * time.Minute); err != nil {
				return nil, err
			}
			r, err := parseResult(p)
			if err != nil {
				return nil, err
			}
			if r.Tasks != o.CheckpointTasks {
				return nil, fmt.Errorf("the %s read found %d tasks, want %d", mode, r.Tasks, o.CheckpointTasks)
			}
			if mode == "raw" && r.Records != int64(o.CheckpointRecords) {
				return nil, fmt.Errorf("the raw read found %d records, want %d", r.Records, o.CheckpointRecords)
			}
			b.logf("  run %d/%d %-6s %s", rep+1, o.Repeats, mode, fmtDuration(r.Elapsed))
			if mode == "raw" {
				raw = append(raw, r.Elapsed.Seconds())
			} else {
				sluice = append(sluice, r.Elapsed.Seconds())
			}
		}
	}
	if o.ProfileDir != "" {
		for _, mode := range []string{"sluice", "raw"} {
			path := filepath.Join(o.ProfileDir, "read-checkpoints-"+mode+".cpu.pprof")
			p, err := b.start("read-"+mode, b.helper, []string{modeReadCheckpoints, "--brokers=" + b.addr, "--topic=" + topic, "--job=" + jobName, "--mode=" + mode, "--cpuprofile=" + path}, o.HelperEnv, nil)
			if err != nil {
				return nil, err
			}
			if err := p.wait(10 * time.Minute); err != nil {
				return nil, err
			}
			b.logf("  profiled %s read -> %s", mode, path)
		}
	}
	if err := b.deleteTopics(ctx, topic); err != nil {
		return nil, err
	}
	s, r := median(sluice), median(raw)
	row := Row{
		Key:    "startup/checkpoint-read",
		Name:   fmt.Sprintf("startup: read checkpoints (%s tasks, %s records) / raw read", group(int64(o.CheckpointTasks)), group(int64(o.CheckpointRecords))),
		Sluice: fmtDuration(secs(s)), Baseline: fmtDuration(secs(r)) + " (raw)",
		SluiceValue: s, BaselineValue: r, Unit: "s", Ratio: s / r,
	}
	atMost(&row, 1.5)
	return []Row{row}, nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// fillCheckpoints creates the topic as the manager does (one partition,
// cleanup.policy=compact; the broker does not compact it during the run) and writes
// the records in the manager's format, keyed by task name: record i is commit
// i/tasks of task i%tasks, whose one input partition advanced by 1,000 per commit.
// Like the manager's synchronous writes, every record is a batch of its own
// (uncompressed: the manager's client compresses a one-record batch only when
// that makes it smaller, which for these documents it barely does).
func (b *bencher) fillCheckpoints(ctx context.Context, jobName, topic string) error {
	o := b.opts
	cfg := checkpointConfig(b.addr, topic, jobName)
	sys, err := kafka.New("kafka", cfg, nil)
	if err != nil {
		return err
	}
	defer sys.Close()
	m, err := kafka.NewCheckpointManager(sys, cfg, nil)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("create the checkpoint topic: %w", err)
	}
	if err := m.Close(); err != nil {
		return err
	}
	b.logf("filling %s: %s checkpoint records of %s tasks, one record per batch", topic, group(int64(o.CheckpointRecords)), group(int64(o.CheckpointTasks)))
	began := time.Now()
	names := make([][]byte, o.CheckpointTasks)
	for i := range names {
		names[i] = []byte(job.TaskName(int32(i)))
	}
	tds, err := b.adm.ListTopics(ctx, topic)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", topic, err)
	}
	id := tds[topic].ID
	ts := time.Now().Add(-time.Hour)
	// Writers take record numbers from next and send one batch per request (the
	// broker takes one batch per partition per request), several requests at once.
	const writers = 16
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= o.CheckpointRecords {
			return 0, false
		}
		next++
		return next - 1, true
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	for range writers {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				t, round := i%o.CheckpointTasks, i/o.CheckpointTasks
				at := ts.Add(time.Duration(round) * time.Second)
				cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{
					system.NewSSP("kafka", "bench-in", int32(t)): strconv.Itoa(round * 1000),
				}}
				value, err := checkpoint.Encode(string(names[t]), cp, checkpoint.NewID(at, uint64(round+1)), at)
				if err != nil {
					fail(err)
					return
				}
				if err := b.produceBatch(ctx, topic, id, names[t], value, at); err != nil {
					fail(fmt.Errorf("write checkpoint record %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	b.logf("  %s records in %s", group(int64(o.CheckpointRecords)), time.Since(began).Round(time.Millisecond))
	return nil
}

// produceBatch writes one record as a batch of its own to partition 0 of topic.
func (b *bencher) produceBatch(ctx context.Context, topic string, id [16]byte, key, value []byte, at time.Time) error {
	rec := kmsg.Record{Key: key, Value: value}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the length of what follows the length
	batch := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: at.UnixMilli(), MaxTimestamp: at.UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: rec.AppendTo(nil),
	}
	raw := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:12], uint32(len(raw)-12))                                          // Length
	binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // CRC
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 30_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rt.TopicID = id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, b.cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
