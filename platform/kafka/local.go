package kafka

import (
	"fmt"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// LocalPartitions is the partition count `pms all` gives the topics of its
// LocalBroker.
const LocalPartitions = 3

// LocalBroker is an embedded single-node Kafka-protocol broker (kfake) for
// running `pms all` on a development machine without Kafka. It is a
// development stand-in, not a production broker: it has no replication, no
// authentication and listens on loopback only.
type LocalBroker struct {
	c         *kfake.Cluster
	closeOnce sync.Once
}

// NewLocalBroker starts a broker listening on addr, which must be a loopback
// host:port (port 0 picks a free one), and creates each topic it does not
// have yet, with the given number of partitions (at least 1). With a
// dataDir, messages and committed offsets are kept there and survive
// restarts (Close saves them; see the package kfake for what a crash
// keeps); with "" they live in memory.
func NewLocalBroker(dataDir, addr string, partitions int, topics ...string) (*LocalBroker, error) {
	if partitions < 1 || partitions > 1000 {
		return nil, fmt.Errorf("local kafka broker: %d partitions, want 1 to 1000", partitions)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("local kafka broker address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("local kafka broker address %q: must be a loopback address", addr)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1 by default; this keeps the host too.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start local kafka broker on %s: %w", addr, err)
	}
	// SeedTopics applies only to an empty data dir; creating what is missing
	// also covers topics added since the data was first written.
	for _, t := range topics {
		if c.TopicInfo(t) != nil {
			continue
		}
		if err := c.CreateTopic(t, int32(partitions), nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("create topic %s on local kafka broker: %w", t, err)
		}
	}
	return &LocalBroker{c: c}, nil
}

// Addrs returns the host:port the broker listens on, for Config.Brokers.
func (b *LocalBroker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker and, with a data dir, saves its state. It always
// returns nil; later calls do nothing.
func (b *LocalBroker) Close() error {
	b.closeOnce.Do(b.c.Close)
	return nil
}
