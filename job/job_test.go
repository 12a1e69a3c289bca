package job_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

func TestSeedConfigurationParses(t *testing.T) {
	jc, err := job.Parse(config.New(map[string]string{
		"job.name":                           "page-views",
		"systems.kafka.samza.factory":        "org.apache.samza.system.kafka.KafkaSystemFactory",
		"task.checkpoint.factory":            "org.apache.samza.checkpoint.kafka.KafkaCheckpointManagerFactory",
		"task.checkpoint.system":             "kafka",
		"task.commit.ms":                     "60000",
		"task.inputs":                        "kafka.PageViewEvent, kafka.my.dotted.topic",
		"task.class":                         "passthrough",
		"systems.kafka.samza.offset.default": "oldest",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if jc.ID != "1" || jc.ContainerCount != 1 || jc.CommitInterval != time.Minute || !jc.CommitOnShutdown {
		t.Errorf("defaults wrong: %+v", jc)
	}
	if jc.CheckpointFactory != "kafka" || jc.SystemFactories["kafka"] != "kafka" || jc.CheckpointSystem != "kafka" {
		t.Errorf("factories not normalised: %+v", jc)
	}
	want := []system.SystemStream{{System: "kafka", Stream: "PageViewEvent"}, {System: "kafka", Stream: "my.dotted.topic"}}
	if len(jc.Inputs) != 2 || jc.Inputs[0] != want[0] || jc.Inputs[1] != want[1] {
		t.Errorf("inputs = %v, want %v", jc.Inputs, want)
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := job.Parse(config.New(map[string]string{
		"systems.kafka.samza.factory":                  "kafka",
		"systems.kafka.samza.offset.default":           "sometime",
		"systems.kafka.streams.A.samza.offset.default": "latest",
		"systems.kafka.streams.A.samza.reset.offset":   "yes",
		"systems.kafka.consumer.auto.offset.reset":     "whatever",
		"task.commit.ms":                               "1m",
		"task.window.ms":                               "often",
		"job.container.count":                          "0",
		"task.inputs":                                  "kafka.A,nope",
		"task.checkpoint.factory":                      "filesystem",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"job.name: is required",
		"task.class: is required",
		"systems.kafka.samza.offset.default=sometime",
		"systems.kafka.streams.A.samza.offset.default=latest",
		"systems.kafka.streams.A.samza.reset.offset=yes",
		"systems.kafka.consumer.auto.offset.reset=whatever",
		"task.commit.ms=1m: not a whole number of milliseconds",
		"task.window.ms=often",
		"job.container.count=0",
		`"nope" is not of the form system.stream`,
		"task.checkpoint.path: is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestWindowMsOffValues(t *testing.T) {
	base := map[string]string{"job.name": "j", "task.class": "x", "task.inputs": "mem.a", "systems.mem.samza.factory": "inmem"}
	for v, want := range map[string]bool{"": false, "-1": true, "0": true, "250": false} {
		m := maps.Clone(base)
		if v != "" {
			m["task.window.ms"] = v
		}
		jc, err := job.Parse(config.New(m))
		if err != nil {
			t.Fatalf("task.window.ms=%q: %v", v, err)
		}
		if off := jc.WindowInterval < 0; off != want {
			t.Errorf("task.window.ms=%q: WindowInterval = %v, off = %v, want off = %v", v, jc.WindowInterval, off, want)
		}
	}
}

func TestKafkaCheckpointNeedsKafkaSystem(t *testing.T) {
	base := map[string]string{
		"job.name": "j", "task.class": "x", "task.inputs": "mem.a",
		"systems.mem.samza.factory": "inmem", "task.checkpoint.factory": "kafka",
	}
	_, err := job.Parse(config.New(base))
	if err == nil || !strings.Contains(err.Error(), "task.checkpoint.system: is required") {
		t.Errorf("error = %v", err)
	}
	base["job.default.system"] = "mem"
	_, err = job.Parse(config.New(base))
	if err == nil || !strings.Contains(err.Error(), "needs a kafka system") {
		t.Errorf("error = %v", err)
	}
}

func TestPoisonPillAndMonitorKeys(t *testing.T) {
	base := map[string]string{
		"job.name":                    "j",
		"task.class":                  "x",
		"task.inputs":                 "kafka.in",
		"systems.kafka.samza.factory": "kafka",
	}
	parse := func(kv ...string) (*job.Config, error) {
		m := maps.Clone(base)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return job.Parse(config.New(m))
	}
	jc, err := parse("task.ignored.exceptions", " skippable , *json.SyntaxError,", "task.dead.letter.stream", "kafka.dead.letters")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(jc.IgnoredErrors, []string{"skippable", "*json.SyntaxError"}) || jc.DeadLetter == nil || *jc.DeadLetter != (system.SystemStream{System: "kafka", Stream: "dead.letters"}) {
		t.Errorf("ignored %q, dead letter %v", jc.IgnoredErrors, jc.DeadLetter)
	}
	if jc.PartitionMonitorInterval != job.DefaultPartitionMonitorInterval {
		t.Errorf("monitor interval %v, want the default", jc.PartitionMonitorInterval)
	}
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"task.dead.letter.stream", "kafak.dlq", "task.ignored.exceptions", "*"}, `task.dead.letter.stream=kafak.dlq: names system "kafak"`},
		{[]string{"task.dead.letter.stream", "dlq"}, "task.dead.letter.stream=dlq: \"dlq\" is not of the form system.stream"},
		{[]string{"task.dead.letter.stream", "kafka.dlq"}, "task.ignored.exceptions, which is not set"},
		{[]string{"job.partition.monitor.ms", "0"}, "job.partition.monitor.ms=0: must be positive"},
	} {
		if _, err := parse(tc.kv...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.kv, err, tc.want)
		}
	}
}

func TestProgramAliasesResolveFactoryNames(t *testing.T) {
	cfg := config.New(map[string]string{
		"job.name":                       "j",
		"task.class":                     "t",
		"task.inputs":                    "nats.in",
		"systems.nats.samza.factory":     " com.example.NatsSystemFactory ",
		"systems.kafka.samza.factory":    "org.apache.samza.system.kafka.KafkaSystemFactory",
		"task.checkpoint.factory":        "com.example.KafkaLikeCheckpoints",
		"task.checkpoint.system":         "nats",
		"systems.other.samza.factory":    "com.example.Unknown",
		"systems.override.samza.factory": "org.apache.samza.system.inmemory.InMemorySystemFactory",
	})
	jc, err := job.ParseWithAliases(cfg, job.Aliases{
		Systems: map[string]string{
			"com.example.NatsSystemFactory":                          "nats",
			"org.apache.samza.system.inmemory.InMemorySystemFactory": "mine",
		},
		Checkpoints: map[string]string{"com.example.KafkaLikeCheckpoints": "kafka"},
	})
	// The alias resolves to kafka before the check: the kafka checkpoint manager
	// needs a kafka system, and nats is not one.
	if err == nil || !strings.Contains(err.Error(), "task.checkpoint.system=nats: the kafka checkpoint manager needs a kafka system, not nats") {
		t.Fatalf("err = %v, want the kafka checkpoint manager's check on the resolved name", err)
	}
	want := map[string]string{"nats": "nats", "kafka": "kafka", "other": "com.example.Unknown", "override": "mine"}
	if !maps.Equal(jc.SystemFactories, want) {
		t.Errorf("SystemFactories = %v, want %v", jc.SystemFactories, want)
	}
	if jc.CheckpointFactory != "kafka" {
		t.Errorf("CheckpointFactory = %q, want kafka", jc.CheckpointFactory)
	}
	// Without the program's aliases the names stay as given (trimmed).
	jc, _ = job.Parse(cfg)
	if jc.SystemFactories["nats"] != "com.example.NatsSystemFactory" || jc.SystemFactories["override"] != "inmem" {
		t.Errorf("Parse: SystemFactories = %v", jc.SystemFactories)
	}
}

func TestDeleteCommittedMessagesRefusedWhereTheJobNeedsThem(t *testing.T) {
	base := map[string]string{
		"job.name": "j", "task.class": "t", "task.inputs": "k.in,k.table", "systems.k.samza.factory": "kafka",
		"task.checkpoint.factory": "kafka", "task.checkpoint.system": "k",
	}
	for _, tc := range []struct {
		kv   map[string]string
		want string // "" when accepted
	}{
		{map[string]string{"systems.k.samza.delete.committed.messages": "true"}, ""},
		{map[string]string{"systems.k.samza.delete.committed.messages": "true", "task.checkpoint.factory": ""}, "systems.k.samza.delete.committed.messages=true: needs checkpoints"},
		{map[string]string{"systems.k.samza.delete.committed.messages": "true", "systems.k.streams.table.samza.reset.offset": "true"},
			"systems.k.samza.delete.committed.messages=true: would delete messages of k.table, which has samza.reset.offset=true"},
		// The stream's own key takes precedence over the system's.
		{map[string]string{"systems.k.samza.delete.committed.messages": "true", "systems.k.streams.table.samza.reset.offset": "true",
			"systems.k.streams.table.samza.delete.committed.messages": "false"}, ""},
		{map[string]string{"systems.k.streams.table.samza.delete.committed.messages": "true", "systems.k.default.stream.samza.reset.offset": "true"},
			"systems.k.streams.table.samza.delete.committed.messages=true: would delete"},
	} {
		m := maps.Clone(base)
		maps.Copy(m, tc.kv)
		if m["task.checkpoint.factory"] == "" {
			delete(m, "task.checkpoint.factory")
		}
		jc, err := job.Parse(config.New(m))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.kv, err)
		case tc.want == "" && !jc.DeleteCommitted(system.SystemStream{System: "k", Stream: "in"}):
			t.Errorf("%v: k.in's committed messages are not deleted", tc.kv)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one with %q", tc.kv, err, tc.want)
		}
	}
}

func TestBroadcastInputs(t *testing.T) {
	base := map[string]string{"job.name": "j", "task.class": "t", "task.inputs": "k.in", "systems.k.samza.factory": "kafka"}
	parse := func(v string) (*job.Config, error) {
		m := maps.Clone(base)
		m["task.broadcast.inputs"] = v
		return job.Parse(config.New(m))
	}
	jc, err := parse(" k.control#0, k.cfg.v2#[1-3],k.control#0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ssp := range jc.Broadcast {
		got = append(got, ssp.String())
	}
	if want := "k.cfg.v2#1 k.cfg.v2#2 k.cfg.v2#3 k.control#0"; strings.Join(got, " ") != want {
		t.Errorf("Broadcast = %v, want %s", got, want)
	}
	if !jc.IsBroadcast(system.NewSSP("k", "control", 0)) || jc.IsBroadcast(system.NewSSP("k", "control", 1)) {
		t.Error("IsBroadcast is wrong")
	}
	if got := fmt.Sprint(jc.ReadStreams()); got != "[k.in k.cfg.v2 k.control]" {
		t.Errorf("ReadStreams = %s", got)
	}
	for v, want := range map[string]string{
		"k.control":       "k.control: want system.stream#N",
		"k.control#x":     "partitions must be numbers",
		"k.control#[3-1]": "the range #[3-1] is empty",
		"k.control#[1-]":  "partitions must be numbers",
		"k.control#[1]":   "want a partition range as #[N-M]",
		"nope.control#0":  `names system "nope"`,
		"control#0":       "control#0: ",
	} {
		if _, err := parse(v); err == nil || !strings.Contains(err.Error(), "task.broadcast.inputs") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming task.broadcast.inputs and %q", v, err, want)
		}
	}
}

func TestDeleteCommittedMessagesNeverOfBroadcastInputs(t *testing.T) {
	_, err := job.Parse(config.New(map[string]string{
		"job.name": "j", "task.class": "t", "task.inputs": "k.in", "systems.k.samza.factory": "kafka",
		"task.checkpoint.factory": "kafka", "task.checkpoint.system": "k", "task.broadcast.inputs": "k.control#0",
		"systems.k.streams.control.samza.delete.committed.messages": "true",
	}))
	if err == nil || !strings.Contains(err.Error(), "k.control is a broadcast input") {
		t.Errorf("error = %v", err)
	}
}

func TestCompareTaskNames(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"Partition 2", "Partition 10", -1},
		{"Partition 10", "Partition 2", 1},
		{"Partition 2", "Partition 2", 0},
		{"Partition 2", "Other", 1},
		{"a", "b", -1},
	} {
		if got := job.CompareTaskNames(tc.a, tc.b); got != tc.want {
			t.Errorf("job.CompareTaskNames(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
