// Package embedkafka runs a Kafka-protocol broker (kfake) inside the process,
// so Inarious runs on a bare machine and most tests need no server.
package embedkafka

import (
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a one-node in-process Kafka cluster on 127.0.0.1.
type Broker struct {
	cluster *kfake.Cluster
}

// Start listens on 127.0.0.1:port (0 picks a free port). With a dataDir the
// broker's logs are kept on disk and reloaded at the next start.
func Start(port int, dataDir string) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(1),
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("embedded kafka: %w", err)
		}
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on port %d: %w", port, err)
	}
	return &Broker{cluster: c}, nil
}

// Addrs are the broker addresses to hand to clients.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and, with a data directory, writes its state to disk.
func (b *Broker) Close() { b.cluster.Close() }
