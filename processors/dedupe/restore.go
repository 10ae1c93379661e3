package dedupe

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/inarious/inarious/internal/kafka"
)

// newSeenReader is the client a member reads SeenTopic's partitions back
// with: committed records only, and the transaction markers too, so that
// it can tell when it reached the last stable offset.
func newSeenReader(cfg kafka.Config) (*kgo.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(kafka.FetchWait),
	)
	if err != nil {
		return nil, fmt.Errorf("dedupe: seen reader: %w", err)
	}
	return cl, nil
}

// restore rebuilds partition p's set from SeenTopic, up to its last stable
// offset: every id a committed flush marked, none an aborted one did.
func (s *Stage) restore(ctx context.Context, cl *kgo.Client, p int32) (*seenSet, error) {
	set := newSeenSet(s.window)
	start, err := listOffset(ctx, cl, SeenTopic, p, earliest)
	if err != nil {
		return nil, err
	}
	end, err := listOffset(ctx, cl, SeenTopic, p, lastStable)
	if err != nil || end <= start {
		return set, err
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{SeenTopic: {p: kgo.NewOffset().AtStart()}})
	defer cl.RemoveConsumePartitions(map[string][]int32{SeenTopic: {p}})
	next, ids := int64(-1), 0
	for next < end {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := fetches.Err(); err != nil {
			return nil, fmt.Errorf("dedupe: read %s[%d]: %w", SeenTopic, p, err)
		}
		var bad error
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic != SeenTopic || r.Partition != p {
				return
			}
			next = r.Offset + 1
			if r.Attrs.IsControl() || bad != nil {
				return
			}
			at, got, err := decodeSeen(r.Value)
			if err != nil {
				bad = fmt.Errorf("%s[%d]@%d: %w", SeenTopic, p, r.Offset, err)
				return
			}
			set.add(at, got)
			ids += len(got)
		})
		if bad != nil {
			return nil, bad
		}
	}
	set.expire(s.now(), 0)
	s.restored.Add(uint64(ids))
	s.log.Info("dedupe ids restored", "partition", p, "ids", ids, "held", set.ids)
	return set, nil
}

// The offsets listOffset asks for (ListOffsets timestamps).
const (
	earliest   = -2 // the log start offset
	lastStable = -1 // read_committed: the last stable offset
)

// listOffset is the offset of topic's partition p at which (earliest or
// lastStable) a read_committed reader starts or ends now.
func listOffset(ctx context.Context, cl *kgo.Client, topic string, p int32, which int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1 // read_committed
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = p
	rp.Timestamp = which
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("dedupe: list offsets of %s[%d]: %w", topic, p, err)
	}
	for _, t := range resp.Topics {
		for _, part := range t.Partitions {
			if part.Partition != p {
				continue
			}
			if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
				return 0, fmt.Errorf("dedupe: list offsets of %s[%d]: %w", topic, p, err)
			}
			return part.Offset, nil
		}
	}
	return 0, fmt.Errorf("dedupe: no offsets of %s[%d] in the answer", topic, p)
}
