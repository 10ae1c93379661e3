// Package ownership finds out from Kafka which member of a consumer group
// owns which partition, and where to reach it: each worker advertises its
// query address in the user data of its JoinGroup, and DescribeGroups returns,
// per member, that metadata and its assignment.
package ownership

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// userDataMagic starts Inarious' user data, so that a member of another
// program (or an older worker) is never taken for a query endpoint.
var userDataMagic = []byte("inarious/v1:")

type advert struct {
	Query string `json:"query"`
}

// UserData is what a worker reachable at queryAddr sends with its JoinGroup
// (sarama's Consumer.Group.Member.UserData).
func UserData(queryAddr string) []byte {
	b, _ := json.Marshal(advert{Query: queryAddr})
	return append(append([]byte{}, userDataMagic...), b...)
}

// QueryAddr reads a member's user data; ok is false when it advertises none.
func QueryAddr(userData []byte) (addr string, ok bool) {
	rest, found := bytes.CutPrefix(userData, userDataMagic)
	if !found {
		return "", false
	}
	var a advert
	if err := json.Unmarshal(rest, &a); err != nil || a.Query == "" {
		return "", false
	}
	return a.Query, true
}

// Owner is the member owning a partition.
type Owner struct {
	MemberID string
	ClientID string
	// Addr is the member's advertised query address ("" if it has none).
	Addr string
}

// Map is one description of the group: who owns what.
type Map struct {
	// Epoch counts the distinct assignments this process has seen.
	// DescribeGroups carries no generation id, so this is our own: it
	// changes whenever the owners change.
	Epoch uint64
	// State is the group's state; owners are known only when "Stable"
	// (Kafka describes members' assignments only then).
	State string
	// Partitions of the topic.
	Partitions int
	Owners     map[int32]Owner
	// At is when the description was taken.
	At time.Time
}

// Owner returns the owner of p, if the group is stable and p's owner
// advertises an address.
func (m *Map) Owner(p int32) (Owner, bool) {
	if m == nil {
		return Owner{}, false
	}
	o, ok := m.Owners[p]
	return o, ok && o.Addr != ""
}

// Covered reports whether every partition has an owner with an address.
func (m *Map) Covered() bool {
	if m == nil || m.Partitions == 0 {
		return false
	}
	for p := range int32(m.Partitions) {
		if _, ok := m.Owner(p); !ok {
			return false
		}
	}
	return true
}

// FromDescription maps the partitions of topic (n of them) to their owners
// in desc. A group that is not Stable has no owners: Kafka does not describe
// assignments while it rebalances, and neither do we.
func FromDescription(desc *sarama.GroupDescription, topic string, n int) (*Map, error) {
	m := &Map{State: desc.State, Partitions: n, Owners: map[int32]Owner{}}
	if desc.State != "Stable" {
		return m, nil
	}
	for id, md := range desc.Members {
		as, err := md.GetMemberAssignment()
		if err != nil {
			return nil, fmt.Errorf("member %s: assignment: %w", id, err)
		}
		if as == nil {
			continue
		}
		o := Owner{MemberID: id, ClientID: md.ClientId}
		if meta, err := md.GetMemberMetadata(); err == nil && meta != nil {
			o.Addr, _ = QueryAddr(meta.UserData)
		}
		for _, p := range as.Topics[topic] {
			if prev, dup := m.Owners[p]; dup {
				return nil, fmt.Errorf("partition %d assigned to both %s and %s", p, prev.MemberID, id)
			}
			m.Owners[p] = o
		}
	}
	return m, nil
}

// Tracker keeps a Map of a group fresh: it describes the group every
// interval, and soon after Refresh (a caller found the map wrong).
type Tracker struct {
	admin    sarama.ClusterAdmin
	client   sarama.Client
	group    string
	topic    string
	interval time.Duration
	minGap   time.Duration
	log      *slog.Logger

	kick chan struct{}

	mu      sync.Mutex
	cur     *Map
	changed chan struct{} // closed and replaced whenever cur is replaced
	err     error
}

// Option configures NewTracker.
type Option func(**slog.Logger)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l **slog.Logger) { *l = log } }

// NewTracker tracks the owners of topic's partitions in group over client,
// which it closes when Run returns.
func NewTracker(client sarama.Client, group, topic string, interval time.Duration, opts ...Option) (*Tracker, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, err
	}
	log := slog.Default()
	for _, o := range opts {
		o(&log)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{
		admin: admin, client: client, group: group, topic: topic,
		interval: interval,
		// Misses come in storms during a rebalance; one describe answers them all.
		minGap:  50 * time.Millisecond,
		log:     log,
		kick:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}, nil
}

// Current is the latest map (nil before the first description) and a
// channel closed when a newer one replaces it.
func (t *Tracker) Current() (*Map, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur, t.changed
}

// Err is the last description's error (nil after a success).
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Refresh asks for a new description soon; it never blocks.
func (t *Tracker) Refresh() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Run describes the group until ctx ends, then closes the client.
func (t *Tracker) Run(ctx context.Context) {
	defer func() { _ = t.admin.Close() }()
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		t.describe()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.minGap):
		}
	}
}

func (t *Tracker) describe() {
	m, err := t.fetch()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.err == nil {
			t.log.Warn("describing the group failed; owners unknown until it works", "group", t.group, "err", err)
		}
		t.err = err
		// Unknown is not "as before": the old owners may be gone.
		m = &Map{State: "Unknown"}
	} else {
		t.err = nil
	}
	m.At = time.Now()
	m.Epoch = 1
	if t.cur != nil {
		m.Epoch = t.cur.Epoch
		if !sameOwners(t.cur, m) {
			m.Epoch++
			t.log.Info("group owners changed", "group", t.group, "state", m.State, "epoch", m.Epoch, "owned", len(m.Owners), "partitions", m.Partitions)
		}
	}
	t.cur = m
	close(t.changed)
	t.changed = make(chan struct{})
}

func sameOwners(a, b *Map) bool {
	return a.State == b.State && a.Partitions == b.Partitions && maps.Equal(a.Owners, b.Owners)
}

func (t *Tracker) fetch() (*Map, error) {
	ps, err := t.client.Partitions(t.topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t.topic, err)
	}
	descs, err := t.admin.DescribeConsumerGroups([]string{t.group})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", t.group, err)
	}
	if len(descs) != 1 {
		return nil, fmt.Errorf("describe group %s: %d descriptions", t.group, len(descs))
	}
	d := descs[0]
	if d.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("describe group %s: %w", t.group, d.Err)
	}
	return FromDescription(d, t.topic, len(ps))
}
