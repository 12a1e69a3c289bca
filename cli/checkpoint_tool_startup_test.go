package cli_test

import (
	"context"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// TestCheckpointToolStartupFailures runs `sluice checkpoint-tool` as a process against
// jobs it cannot open, one cause each: every one must exit 1 with the container's
// message for the cause, and no panic.
func TestCheckpointToolStartupFailures(t *testing.T) {
	t.Parallel()
	kafkaCP := []string{"task.checkpoint.factory", "kafka", "task.checkpoint.system", "kafka"}
	for _, tc := range []struct {
		name  string
		extra []string
		setup func(t *testing.T, e *toolEnv) (extra []string)
		cause []string
		// printOnly: a rewrite is expected to work (--reset-to replaces a corrupt
		// checkpoint).
		printOnly bool
	}{
		{
			name: "broker unreachable",
			setup: func(t *testing.T, e *toolEnv) []string {
				addr := closedPort(t)
				return []string{"systems.kafka.consumer.bootstrap.servers", addr, "systems.kafka.producer.bootstrap.servers", addr}
			},
			cause: []string{"start system kafka", "no broker answered at 127.0.0.1:"},
		},
		{
			name:  "input topic missing",
			extra: []string{"task.inputs", "kafka.NoSuchTopic"},
			cause: []string{"read metadata of inputs NoSuchTopic of system kafka", "NoSuchTopic"},
		},
		{
			name: "checkpoint path is a file",
			setup: func(t *testing.T, e *toolEnv) []string {
				path := e.writeFile(t, "not-a-dir", "x\n")
				return []string{"task.checkpoint.path", path}
			},
			cause: []string{"start checkpoint manager", "not-a-dir is not a directory"},
		},
		{
			name:  "checkpoint topic with 2 partitions",
			extra: kafkaCP,
			setup: func(t *testing.T, e *toolEnv) []string {
				if _, err := kadm.NewClient(e.client).CreateTopic(t.Context(), 2, 1, nil, checkpointTopic); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			cause: []string{"start checkpoint manager", "topic " + checkpointTopic + " has 2 partitions", "must have exactly 1"},
		},
		{
			name:  "checkpoint record without a key",
			extra: kafkaCP,
			setup: func(t *testing.T, e *toolEnv) []string {
				e.writeCheckpoint(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: "1"})
				// kcat -P writes records like this one: no key.
				if err := e.client.ProduceSync(context.Background(), &kgo.Record{Topic: checkpointTopic, Value: []byte("hello")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			cause: []string{"start checkpoint manager", "topic " + checkpointTopic + " partition 0 offset 1 is corrupt", "the record has no key"},
		},
		{
			name:  "checkpoint record that is not a checkpoint",
			extra: kafkaCP,
			setup: func(t *testing.T, e *toolEnv) []string {
				e.kafkaManager(t) // creates the topic
				if err := e.client.ProduceSync(context.Background(), &kgo.Record{Topic: checkpointTopic, Key: []byte("Partition 0"), Value: []byte("hello")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			cause:     []string{`task "Partition 0"`, "topic " + checkpointTopic + " partition 0 offset 0 is corrupt", "not a checkpoint document"},
			printOnly: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newToolEnv(t, tc.extra...)
			if tc.setup != nil {
				if extra := tc.setup(t, e); extra != nil {
					e.writeConfig(t, "job2.properties", extra...)
				}
			}
			wantCleanFailure(t, sluiceProcess(t, "checkpoint-tool", "--config-path="+e.cfg), tc.cause...)
			if !tc.printOnly {
				wantCleanFailure(t, sluiceProcess(t, "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=oldest"), tc.cause...)
			}
		})
	}
}

// closedPort returns the address of a local port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
