// Package kafkatest gives tests an in-process Kafka-protocol cluster (kfake)
// on 127.0.0.1 with the task and dead-letter topics, and helpers to write
// raw messages, read topics back and look at consumer groups.
package kafkatest

import (
	"cmp"
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pms-dev/pms/platform/kafka"
)

// Partitions is the partition count of the seeded topics.
const Partitions = 3

// timeout bounds every helper that talks to the cluster.
const timeout = 15 * time.Second

// Cluster is a single-broker kfake cluster private to one test.
type Cluster struct {
	mu  sync.Mutex
	kc  *kfake.Cluster
	cfg kafka.Config
	dir string // messages and committed offsets, kept across Restart
}

// Message is a message read back from a topic.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string // the last value of each key
}

// New starts a cluster with the default task, dead-letter and event topics
// (Partitions each; other topics are created on first use) and stops it
// when the test ends. It skips the test under -short.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: starts a Kafka-protocol broker")
	}
	return NewOn(tb, 0)
}

// NewOn is New on the given loopback port; 0 picks a free one.
func NewOn(tb testing.TB, port int) *Cluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: starts a Kafka-protocol broker")
	}
	cfg := kafka.DefaultConfig()
	c := &Cluster{dir: tb.TempDir()}
	kc, err := c.start(port)
	if err != nil {
		tb.Fatalf("start kfake cluster: %v", err)
	}
	c.kc = kc
	tb.Cleanup(func() { c.Stop() })

	cfg.Brokers = kc.ListenAddrs()
	cfg.ClientID = "pms-test"
	cfg.Concurrency = 4
	cfg.RetryBackoff = 5 * time.Millisecond
	cfg.MaxRetryBackoff = 20 * time.Millisecond
	cfg.ShutdownGrace = time.Second
	cfg.DialTimeout = 2 * time.Second
	cfg.ReadTimeout = 5 * time.Second
	cfg.WriteTimeout = 5 * time.Second
	cfg.ProduceTimeout = 5 * time.Second
	cfg.MaxWaitTime = 50 * time.Millisecond
	cfg.CommitInterval = 50 * time.Millisecond
	c.cfg = cfg
	return c
}

func (c *Cluster) start(port int) (*kfake.Cluster, error) {
	cfg := kafka.DefaultConfig()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(Partitions, cfg.Topic, cfg.DeadLetterTopic, cfg.EventsTopic),
		kfake.AllowAutoTopicCreation(),
		kfake.DataDir(c.dir),
	}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	return kfake.NewCluster(opts...)
}

// Stop shuts the broker down, keeping its data: clients see Kafka go away.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kc != nil {
		c.kc.Close()
		c.kc = nil
	}
}

// Restart starts the broker again on the same address with the data it had.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	_, port, err := net.SplitHostPort(c.cfg.Brokers[0])
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kc != nil {
		tb.Fatal("kafkatest: Restart of a running cluster")
	}
	if c.kc, err = c.start(n); err != nil {
		tb.Fatalf("restart kfake cluster on port %d: %v", n, err)
	}
}

// Brokers returns the cluster's addresses.
func (c *Cluster) Brokers() []string { return c.cfg.Brokers }

// Config returns a kafka.Config for this cluster with the default topics
// and group, and timings made for tests: short fetch waits, backoffs and
// commit interval.
func (c *Cluster) Config() kafka.Config {
	cfg := c.cfg
	cfg.Brokers = slices.Clone(cfg.Brokers)
	return cfg
}

// Produce writes one raw message to topic and waits for its ack.
func (c *Cluster) Produce(tb testing.TB, topic string, key, value []byte, headers map[string]string) {
	tb.Helper()
	cl := c.client(tb)
	defer cl.Close()
	r := &kgo.Record{Topic: topic, Key: key, Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		tb.Fatalf("produce to %s: %v", topic, err)
	}
}

// Messages returns every message now in topic, by partition and offset.
func (c *Cluster) Messages(tb testing.TB, topic string) []Message {
	tb.Helper()
	ends := make(map[int32]int64)
	want := make(map[string]map[int32]kgo.Offset)
	for _, p := range c.kc.PartitionInfos(topic) {
		if p.HighWatermark > p.LogStartOffset {
			ends[p.Partition] = p.HighWatermark
			if want[topic] == nil {
				want[topic] = make(map[int32]kgo.Offset)
			}
			want[topic][p.Partition] = kgo.NewOffset().At(p.LogStartOffset)
		}
	}
	if len(ends) == 0 {
		return nil
	}
	cl := c.client(tb, kgo.ConsumePartitions(want), kgo.FetchMaxWait(50*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []Message
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("read %s: %v (partitions left: %v)", topic, ctx.Err(), ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := ends[r.Partition]; !ok || r.Offset >= end {
				return
			}
			m := Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: map[string]string{}}
			for _, h := range r.Headers {
				m.Headers[h.Key] = string(h.Value)
			}
			out = append(out, m)
			if r.Offset+1 >= ends[r.Partition] {
				delete(ends, r.Partition)
			}
		})
	}
	slices.SortFunc(out, func(a, b Message) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

// WaitMessages waits until topic holds at least n messages and returns
// them all; it fails the test after d.
func (c *Cluster) WaitMessages(tb testing.TB, topic string, n int, d time.Duration) []Message {
	tb.Helper()
	deadline := time.Now().Add(d)
	for c.Count(topic) < n {
		if time.Now().After(deadline) {
			tb.Fatalf("topic %s has %d messages after %v, want at least %d", topic, c.Count(topic), d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c.Messages(tb, topic)
}

// Count returns how many messages topic holds.
func (c *Cluster) Count(topic string) int {
	var n int64
	for _, p := range c.kc.PartitionInfos(topic) {
		n += p.HighWatermark - p.LogStartOffset
	}
	return int(n)
}

// CreateTopic creates topic with the given number of partitions.
func (c *Cluster) CreateTopic(tb testing.TB, topic string, partitions int32) {
	tb.Helper()
	if err := c.kc.CreateTopic(topic, partitions, nil); err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
}

// Committed returns the offsets group has committed for topic, by
// partition.
func (c *Cluster) Committed(group, topic string) map[int32]int64 {
	out := make(map[int32]int64)
	if g := c.kc.GroupInfo(group); g != nil {
		for p, commit := range g.Commits[topic] {
			out[p] = commit.Offset
		}
	}
	return out
}

// WaitGroupStable waits until group is stable with members members (-1 for
// any number) and fails the test after d.
func (c *Cluster) WaitGroupStable(tb testing.TB, group string, members int, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, err := c.kc.WaitGroupStable(ctx, group, members); err != nil {
		tb.Fatalf("group %s not stable with %d members after %v: %v", group, members, d, err)
	}
}

// client is a franz-go client of the cluster; the caller closes it.
func (c *Cluster) client(tb testing.TB, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers()...)}, opts...)...)
	if err != nil {
		tb.Fatalf("kafka client: %v", err)
	}
	return cl
}
