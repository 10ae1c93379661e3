package ownership

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/testutil"
)

// fakeSession is the part of a session the lease uses.
type fakeSession struct {
	sarama.ConsumerGroupSession
	ctx context.Context
}

func (s fakeSession) MemberID() string         { return "m-1" }
func (s fakeSession) GenerationID() int32      { return 7 }
func (s fakeSession) Context() context.Context { return s.ctx }

// The lease is confirmed by the coordinator's answers to its own
// heartbeats, at their send time, and not by any other: a rebalance or an
// eviction answer leaves it aging, and a new session starts unconfirmed.
func TestLeaseFollowsTheCoordinatorsAnswers(t *testing.T) {
	b := sarama.NewMockBroker(t, 1)
	defer b.Close()
	answer := func(hbErr sarama.KError) {
		b.SetHandlerByMap(map[string]sarama.MockResponse{
			"MetadataRequest":        sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()),
			"FindCoordinatorRequest": sarama.NewMockFindCoordinatorResponse(t).SetCoordinator(sarama.CoordinatorGroup, "usage", b),
			"HeartbeatRequest":       sarama.NewMockWrapper(&sarama.HeartbeatResponse{Version: 2, Err: hbErr}),
		})
	}
	answer(sarama.ErrNoError)
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_1_0_0
	sc.ApiVersionsRequest = false
	client, err := sarama.NewClient([]string{b.Addr()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	l := NewLease("usage", 10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err := l.Check(time.Hour); err == nil {
		t.Fatal("a lease never confirmed passes Check")
	}
	ctx, end := context.WithCancel(t.Context())
	start := time.Now()
	l.Follow(func() (sarama.Client, error) { return client, nil }, sc.Version, fakeSession{ctx: ctx})
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return !l.Confirmed().Before(start), "no heartbeat confirmed"
	})
	if err := l.Check(time.Second); err != nil {
		t.Errorf("just confirmed: %v", err)
	}

	// The coordinator evicted the member: confirmations stop.
	answer(sarama.ErrUnknownMemberId)
	evicted := time.Now()
	time.Sleep(50 * time.Millisecond) // heartbeats answered with the error meanwhile
	if c := l.Confirmed(); c.After(evicted) {
		t.Errorf("confirmed at %v, after the member was evicted (%v)", c, evicted)
	}
	if err := l.Check(10 * time.Millisecond); err == nil {
		t.Error("a lease unconfirmed for 50 ms passes Check(10ms)")
	}
	end()

	// A new session starts unconfirmed, whatever the old one had.
	answer(sarama.ErrNoError)
	ctx2, end2 := context.WithCancel(t.Context())
	defer end2()
	l.Follow(func() (sarama.Client, error) { return client, nil }, sc.Version, fakeSession{ctx: ctx2})
	if !l.Confirmed().IsZero() {
		t.Error("a new session starts confirmed")
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return l.Check(time.Second) == nil, "new session not confirmed"
	})
}
