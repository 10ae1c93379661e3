package stream_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/inarious/inarious/internal/stream"
)

// brokerWithTxnRetryBackoff is a broker whose DescribeConfigs answers
// add.partitions.to.txn.retry.backoff.ms with value (kfake does not keep
// that setting).
func brokerWithTxnRetryBackoff(t *testing.T, value string) *kgo.Client {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cluster.ControlKey(int16(kmsg.DescribeConfigs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		in := req.(*kmsg.DescribeConfigsRequest)
		resp := in.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, r := range in.Resources {
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value = "add.partitions.to.txn.retry.backoff.ms", &value
			rr.Configs = append(rr.Configs, c)
			resp.Resources = append(resp.Resources, rr)
		}
		return resp, nil, true
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestLogTxnRetryBackoffAdvisesOnSlowBrokers(t *testing.T) {
	for value, advised := range map[string]bool{"20": true, "5": false, "1": false, "not a number": false} {
		var out bytes.Buffer
		stream.LogTxnRetryBackoff(context.Background(), brokerWithTxnRetryBackoff(t, value), slog.New(slog.NewTextHandler(&out, nil)))
		if got := strings.Contains(out.String(), "add.partitions.to.txn.retry.backoff.ms"); got != advised {
			t.Errorf("broker at %q: advised %v, want %v; log: %s", value, got, advised, out.String())
		}
	}
}
