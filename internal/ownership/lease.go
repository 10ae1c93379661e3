package ownership

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Lease tells a member how recently the group coordinator confirmed that it
// is still a member of its current generation. sarama's own heartbeat loop
// reports no success, so the lease sends heartbeats of its own, with the
// session's member and generation id: an ErrNoError answer to a heartbeat
// sent at t means the coordinator saw this member in that generation, with
// the group Stable, at some time after t, so it cannot be evicted (nor its
// partitions assigned to another) before t + the session timeout. A
// stalled process (SIGSTOP, a paused VM) sends nothing, so its lease ages;
// a local timer could not tell. Cost: one Heartbeat request per interval
// per group, which (like sarama's) only renews this member's session.
type Lease struct {
	group    string
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	sess      sarama.ConsumerGroupSession // the session followed; nil before the first
	confirmed time.Time                   // send time of its last confirmed heartbeat
}

// NewLease is the lease of this process' member of group, renewed every
// interval (sarama's heartbeat interval).
func NewLease(group string, interval time.Duration, log *slog.Logger) *Lease {
	if log == nil {
		log = slog.Default()
	}
	return &Lease{group: group, interval: interval, log: log, now: time.Now}
}

// Confirmed is the send time of the last heartbeat the coordinator
// accepted for the current session (zero if none yet).
func (l *Lease) Confirmed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}

// Group is the group whose membership the lease follows.
func (l *Lease) Group() string { return l.group }

// Follow renews the lease for sess over the client that client returns
// (a shared one, opened on first use) in a goroutine of its own until
// sess ends; call it when a session begins (its Setup). The new session
// is unconfirmed when Follow returns: the old generation's confirmation
// says nothing about the new assignment.
func (l *Lease) Follow(client func() (sarama.Client, error), version sarama.KafkaVersion, sess sarama.ConsumerGroupSession) {
	l.mu.Lock()
	l.sess, l.confirmed = sess, time.Time{}
	l.mu.Unlock()
	go l.renew(client, version, sess)
}

func (l *Lease) renew(client func() (sarama.Client, error), version sarama.KafkaVersion, sess sarama.ConsumerGroupSession) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	failing := false
	for {
		sent := l.now()
		err := l.heartbeat(client, version, sess)
		l.mu.Lock()
		if err == nil && l.sess == sess {
			l.confirmed = sent
		}
		l.mu.Unlock()
		if (err != nil) != failing {
			failing = err != nil
			if failing {
				l.log.Warn("membership not confirmed; routed reads are refused until it is", "group", l.group, "generation", sess.GenerationID(), "err", err)
			} else {
				l.log.Info("membership confirmed again", "group", l.group, "generation", sess.GenerationID())
			}
		}
		select {
		case <-sess.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// heartbeat asks the coordinator whether sess is a member of the group's
// current, stable generation (as sarama's heartbeatRequest does).
func (l *Lease) heartbeat(clientOf func() (sarama.Client, error), version sarama.KafkaVersion, sess sarama.ConsumerGroupSession) error {
	client, err := clientOf()
	if err != nil {
		return err
	}
	coord, err := client.Coordinator(l.group)
	if err != nil {
		return err
	}
	req := &sarama.HeartbeatRequest{GroupId: l.group, MemberId: sess.MemberID(), GenerationId: sess.GenerationID()}
	switch {
	case version.IsAtLeast(sarama.V2_4_0_0):
		req.Version = 4
	case version.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 3
	case version.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 2
	case version.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 1
	}
	resp, err := coord.Heartbeat(req)
	if err != nil {
		_ = coord.Close()
		_ = client.RefreshCoordinator(l.group)
		return err
	}
	if resp.Err == sarama.ErrNotCoordinatorForConsumer || resp.Err == sarama.ErrConsumerCoordinatorNotAvailable {
		_ = client.RefreshCoordinator(l.group)
	}
	if resp.Err != sarama.ErrNoError {
		return resp.Err
	}
	return nil
}

// Check fails unless the coordinator confirmed the membership within
// maxAge (by Confirmed's time).
func (l *Lease) Check(maxAge time.Duration) error {
	c := l.Confirmed()
	if c.IsZero() {
		return fmt.Errorf("group %s: membership not confirmed yet", l.group)
	}
	if age := l.now().Sub(c); age > maxAge {
		return fmt.Errorf("group %s: membership last confirmed %v ago", l.group, age.Round(time.Millisecond))
	}
	return nil
}
