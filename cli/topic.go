package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/broker"
)

const topicUsage = `usage: sluice topic <command> [flags]

commands:
  create   create topics:  sluice topic create --topic=T[,T...] [--partitions=N] [--replication-factor=N]
  produce  write lines as records:  sluice topic produce --topic=T [--file=PATH] [--key-separator=SEP] [--partition=N]
  consume  print a topic's records, oldest first, up to its end:  sluice topic consume --topic=T [--partition=N] [--key-separator=SEP]
  list     list the topics with their partitions and messages:  sluice topic list

Every command takes --bootstrap=HOST:PORT[,...] (default ` + broker.DefaultListen + `, where 'sluice broker' listens).
Run 'sluice topic <command> -h' for a command's flags.
`

// topic runs `sluice topic <command>`: small Kafka chores for development, so that a
// job's topics can be created, filled and read with nothing else installed.
func (e *env) topic(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, topicUsage)
		return ExitUsage
	}
	switch args[0] {
	case "create":
		return e.topicCreate(ctx, args[1:])
	case "produce":
		return e.topicProduce(ctx, args[1:])
	case "consume":
		return e.topicConsume(ctx, args[1:])
	case "list":
		return e.topicList(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, topicUsage)
		return ExitOK
	}
	fmt.Fprintf(e.stderr, "sluice topic: unknown command %q\n\n%s", args[0], topicUsage)
	return ExitUsage
}

// topicCmd is what every topic command shares: its flags, --bootstrap and
// --log-level (default warn: the Kafka client's chatter is not for people).
type topicCmd struct {
	e         *env
	name      string
	fs        *flag.FlagSet
	bootstrap *string
	level     *string
	log       *slog.Logger
}

func (e *env) topicCmd(name, synopsis string) *topicCmd {
	fs, level := e.flags("topic "+name, synopsis+" [--bootstrap=HOST:PORT[,...]]")
	if f := fs.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
		*level = "warn"
	}
	return &topicCmd{e: e, name: name, fs: fs, level: level,
		bootstrap: fs.String("bootstrap", broker.DefaultListen, "the Kafka brokers to connect to, comma-separated host:port")}
}

// parse parses the flags and the log level; a non-nil exit code means stop with it.
func (c *topicCmd) parse(args []string) (int, bool) {
	if code, stop := c.e.parse(c.fs, args); stop {
		return code, true
	}
	log, err := c.e.logger(*c.level)
	if err != nil {
		return c.usageErr("%v", err), true
	}
	c.log = log
	return 0, false
}

// usageErr reports a usage problem and returns ExitUsage.
func (c *topicCmd) usageErr(format string, args ...any) int {
	fmt.Fprintf(c.e.stderr, "sluice topic %s: %s\n", c.name, fmt.Sprintf(format, args...))
	c.fs.Usage()
	return ExitUsage
}

// fail reports a runtime failure and returns ExitFailure.
func (c *topicCmd) fail(format string, args ...any) int {
	fmt.Fprintf(c.e.stderr, "sluice topic %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return ExitFailure
}

// connect returns a client of the --bootstrap brokers, once one of them answered.
func (c *topicCmd) connect(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	var seeds []string
	for _, s := range strings.Split(*c.bootstrap, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("--bootstrap is empty")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.WithLogger(kgoLog{c.log})}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("--bootstrap=%s: %w", *c.bootstrap, err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("cannot reach a broker at %s (is 'sluice broker' running?): %w", *c.bootstrap, err)
	}
	return cl, nil
}

// partitions returns the number of partitions of topic; a topic that does not exist
// is an error saying so.
func partitions(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	td, ok := tds[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return 0, fmt.Errorf("topic %s does not exist (create it with 'sluice topic create')", topic)
	case td.Err != nil:
		return 0, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	return len(td.Partitions), nil
}

func (e *env) topicCreate(ctx context.Context, args []string) int {
	c := e.topicCmd("create", "--topic=T[,T...] [--partitions=N] [--replication-factor=N]")
	topics := c.fs.String("topic", "", "the topics to create, comma-separated (required)")
	parts := c.fs.Int("partitions", 1, "the number of partitions of each topic")
	rf := c.fs.Int("replication-factor", 1, "the number of copies of each partition (at most the number of brokers)")
	if code, stop := c.parse(args); stop {
		return code
	}
	var names []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			names = append(names, t)
		}
	}
	switch {
	case len(names) == 0:
		return c.usageErr("--topic is required")
	case *parts < 1:
		return c.usageErr("--partitions=%d: want at least 1", *parts)
	case *rf < 1 || *rf > 32767:
		return c.usageErr("--replication-factor=%d: want 1 to 32767", *rf)
	}
	cl, err := c.connect(ctx)
	if err != nil {
		return c.fail("%v", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(*parts), int16(*rf), nil, names...)
	if err != nil {
		return c.fail("%v", err)
	}
	code := ExitOK
	for _, name := range names {
		r := resp[name]
		switch {
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
			code = c.fail("topic %s already exists; nothing changed", name)
		case r.Err != nil:
			code = c.fail("create topic %s: %v", name, r.Err)
		default:
			fmt.Fprintf(e.stdout, "Created topic %s with %s.\n", name, plural(int(r.NumPartitions), "partition"))
		}
	}
	return code
}

func (e *env) topicProduce(ctx context.Context, args []string) int {
	c := e.topicCmd("produce", "--topic=T [--file=PATH] [--key-separator=SEP] [--partition=N]")
	topic := c.fs.String("topic", "", "the topic to write to (required)")
	file := c.fs.String("file", "-", "read the records from this file; - reads stdin")
	sep := c.fs.String("key-separator", "", "split each line at its first `SEP` into key and value (default: the whole line is the value, with no key)")
	part := c.fs.Int("partition", -1, "write every record to this partition (default: by key, like Kafka's producer; records without a key go round-robin)")
	if code, stop := c.parse(args); stop {
		return code
	}
	if *topic == "" {
		return c.usageErr("--topic is required")
	}
	in, name := e.stdin, "stdin"
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return c.usageErr("%v", err)
		}
		defer f.Close()
		in, name = f, *file
	}
	// The whole input is read and checked before anything is written, so that a bad
	// line writes nothing.
	recs, err := readRecords(in, name, *topic, *sep)
	if err != nil {
		fmt.Fprintf(e.stderr, "sluice topic produce: %v; nothing was written\n", err)
		return ExitUsage
	}
	cl, err := c.connect(ctx, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return c.fail("%v", err)
	}
	defer cl.Close()
	n, err := partitions(ctx, kadm.NewClient(cl), *topic)
	if err != nil {
		return c.fail("%v; nothing was written", err)
	}
	if *part >= n {
		return c.usageErr("--partition=%d: topic %s has partitions 0 to %d; nothing was written", *part, *topic, n-1)
	}
	perPartition := make([]int, n)
	keyed := kgo.StickyKeyPartitioner(nil).ForTopic(*topic)
	for i, r := range recs {
		switch {
		case *part >= 0:
			r.Partition = int32(*part)
		case r.Key != nil:
			r.Partition = int32(keyed.Partition(r, n))
		default:
			r.Partition = int32(i % n)
		}
		perPartition[r.Partition]++
	}
	res := cl.ProduceSync(ctx, recs...)
	written := 0
	for _, r := range res {
		if r.Err == nil {
			written++
		}
	}
	if err := res.FirstErr(); err != nil {
		return c.fail("%d of %d records were written to %s: %v", written, len(recs), *topic, err)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stdout, "Wrote nothing to %s: %s has no lines.\n", *topic, name)
		return ExitOK
	}
	var counts []string
	for p, k := range perPartition {
		if k > 0 {
			counts = append(counts, fmt.Sprintf("%d to partition %d", k, p))
		}
	}
	fmt.Fprintf(e.stdout, "Wrote %s to %s: %s.\n", plural(len(recs), "record"), *topic, strings.Join(counts, ", "))
	return ExitOK
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// readRecords reads one record a line (without its line ending; empty lines are
// skipped). With a separator, each line is key, separator, value; a line without one
// is an error naming it.
func readRecords(in io.Reader, name, topic, sep string) ([]*kgo.Record, error) {
	var recs []*kgo.Record
	r := bufio.NewReader(in)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		if len(b) > 0 {
			rec := &kgo.Record{Topic: topic, Value: b}
			if sep != "" {
				k, v, ok := bytes.Cut(b, []byte(sep))
				if !ok {
					return nil, fmt.Errorf("%s, line %d: no key separator %q in %q", name, line, sep, clip(b))
				}
				rec.Key, rec.Value = k, v
			}
			recs = append(recs, rec)
		}
		if err != nil {
			return recs, nil
		}
	}
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

func (e *env) topicConsume(ctx context.Context, args []string) int {
	c := e.topicCmd("consume", "--topic=T [--partition=N] [--key-separator=SEP]")
	topic := c.fs.String("topic", "", "the topic to read (required)")
	part := c.fs.Int("partition", -1, "read only this partition (default: every partition, one after another)")
	sep := c.fs.String("key-separator", "", "print each record as key, `SEP`, value (default: the value only)")
	if code, stop := c.parse(args); stop {
		return code
	}
	if *topic == "" {
		return c.usageErr("--topic is required")
	}
	cl, err := c.connect(ctx)
	if err != nil {
		return c.fail("%v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n, err := partitions(ctx, adm, *topic)
	if err != nil {
		return c.fail("%v", err)
	}
	if *part >= n {
		return c.usageErr("--partition=%d: topic %s has partitions 0 to %d", *part, *topic, n-1)
	}
	starts, err := adm.ListStartOffsets(ctx, *topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return c.fail("list the start offsets of %s: %v", *topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, *topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return c.fail("list the end offsets of %s: %v", *topic, err)
	}
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	for p := range int32(n) {
		if *part >= 0 && p != int32(*part) {
			continue
		}
		start, _ := starts.Lookup(*topic, p)
		end, _ := ends.Lookup(*topic, p)
		if err := c.consumePartition(ctx, *topic, p, start.Offset, end.Offset, *sep, out); err != nil {
			out.Flush()
			return c.fail("%s partition %d: %v", *topic, p, err)
		}
	}
	if err := out.Flush(); err != nil {
		return c.fail("write the records: %v", err)
	}
	return ExitOK
}

// consumePartition writes the records of one partition from start up to end.
func (c *topicCmd) consumePartition(ctx context.Context, topic string, p int32, start, end int64, sep string, out *bufio.Writer) error {
	if start >= end {
		return nil
	}
	cl, err := c.connect(ctx,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(start)}}),
		// Transaction markers take offsets too; seeing them tells when end is reached.
		kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fs.Err(); err != nil {
			return err
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done || r.Offset >= end {
				done = true
				return
			}
			if !r.Attrs.IsControl() {
				if sep != "" {
					out.Write(r.Key)
					out.WriteString(sep)
				}
				out.Write(r.Value)
				out.WriteByte('\n')
			}
			done = r.Offset == end-1
		})
		if done {
			return nil
		}
	}
}

func (e *env) topicList(ctx context.Context, args []string) int {
	c := e.topicCmd("list", "")
	if code, stop := c.parse(args); stop {
		return code
	}
	cl, err := c.connect(ctx)
	if err != nil {
		return c.fail("%v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		return c.fail("list the topics: %v", err)
	}
	names := tds.Names()
	slices.Sort(names)
	messages := map[string]int64{}
	if len(names) > 0 {
		starts, err := adm.ListStartOffsets(ctx, names...)
		if err != nil {
			return c.fail("list the start offsets: %v", err)
		}
		ends, err := adm.ListEndOffsets(ctx, names...)
		if err != nil {
			return c.fail("list the end offsets: %v", err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			s, _ := starts.Lookup(o.Topic, o.Partition)
			messages[o.Topic] += o.Offset - s.Offset
		})
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITIONS\tMESSAGES")
	for _, name := range names {
		fmt.Fprintf(w, "%s\t%d\t%d\n", name, len(tds[name].Partitions), messages[name])
	}
	if err := w.Flush(); err != nil {
		return c.fail("%v", err)
	}
	return ExitOK
}

// kgoLog sends the Kafka client's log lines to slog; its info lines are chatty, so
// they go out at debug level.
type kgoLog struct{ l *slog.Logger }

func (k kgoLog) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (k kgoLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, "kafka client: "+msg, keyvals...)
}
