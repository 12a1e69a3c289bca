// Package kafkatest starts throwaway Kafka clusters for tests: a single kfake broker
// (franz-go's in-process fake Kafka) listening on 127.0.0.1 on a free port, reached
// over real TCP like any broker, and closed when the test ends.
//
//	func TestSomething(t *testing.T) {
//		c := kafkatest.NewCluster(t, kfake.SeedTopics(4, "PageViewEvent"))
//		cfg := config.New(map[string]string{
//			"systems.kafka.consumer.bootstrap.servers": kafkatest.Seeds(c),
//		})
//		...
//	}
//
// kfake implements the Kafka protocol (produce, fetch, groups, transactions, ACLs,
// SASL) but not replication; it also offers fault injection (Cluster.Fault,
// ControlKey) and explicit compaction (Cluster.Compact).
package kafkatest

import (
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// NewCluster starts a one-broker kfake cluster on 127.0.0.1 with a free port, with
// opts applied after those defaults, and closes it with t.Cleanup. It fails the test
// if the cluster cannot start.
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, "127.0.0.1:0")
		}),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Seeds returns the cluster's broker addresses as a bootstrap.servers value.
func Seeds(c *kfake.Cluster) string {
	return strings.Join(c.ListenAddrs(), ",")
}
