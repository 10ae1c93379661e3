package kafka

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// RecoveryFetchWait is the fetch wait of a table's recovery (see
// TableConsumerBuilder): short, as every wait was before FetchWait, since a
// recovery ends by itself and a partition joining it late waits for one.
const RecoveryFetchWait = 10 * time.Millisecond

// TableConsumerBuilder builds the sarama consumer goka reads tables with
// (a view's, a processor's own table and its joins) from sc, which waits
// FetchWait. sarama adds a partition to a broker's fetch loop, and lets a
// closed one go, only between two fetches, so with a long wait:
//
//   - A view's or processor's partitions start their recovery at slightly
//     different times; one that comes after the first fetch went out waits
//     for it, and once the others have caught up that fetch waits a whole
//     FetchWait: a view was ready up to that late (1.1 s instead of 0.1 s in
//     4 of 6 runs of a test, with a 1 s wait).
//   - goka closes a partition's recovery consumer once it has caught up and
//     waits for the close: a processor started up to a FetchWait late (a
//     cold worker 1.1 s instead of 0.1 s), and a view began following its
//     table that late.
//   - Every view and processor stopped up to a FetchWait late.
//
// So goka's recoveries (PartitionTable.SetupAndRecover) consume through a
// second sarama consumer that waits only RecoveryFetchWait, built at the
// first recovery; it has nothing to fetch once they are done, so it does not
// poll. And a partition consumer's AsyncClose and Close return at once:
// Messages and Errors become closed channels (what goka drains) while sarama
// releases the partition in the background, discarding what is left.
// Consuming a partition the same sarama consumer is still releasing waits
// for the release: sarama refuses a partition it still consumes.
func TableConsumerBuilder(sc *sarama.Config) goka.SaramaConsumerBuilder {
	rc := *sc
	rc.Consumer.MaxWaitTime = RecoveryFetchWait
	live, recovery := goka.SaramaConsumerBuilderWithConfig(sc), goka.SaramaConsumerBuilderWithConfig(&rc)
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		c, err := live(brokers, clientID)
		if err != nil {
			return nil, err
		}
		return &tableConsumer{
			live:          newMember(c),
			buildRecovery: func() (sarama.Consumer, error) { return recovery(brokers, clientID) },
		}, nil
	}
}

type topicPartition struct {
	topic     string
	partition int32
}

type tableConsumer struct {
	live          *member
	buildRecovery func() (sarama.Consumer, error)

	mu       sync.Mutex // guards recovery and every member's releasing
	recovery *member
}

// member is one sarama consumer and the partitions it is releasing.
type member struct {
	sarama.Consumer
	releasing map[topicPartition]chan struct{} // closed once released
}

func newMember(c sarama.Consumer) *member {
	return &member{Consumer: c, releasing: make(map[topicPartition]chan struct{})}
}

func (c *tableConsumer) ConsumePartition(topic string, partition int32, offset int64) (sarama.PartitionConsumer, error) {
	m := c.live
	if inRecovery() {
		var err error
		if m, err = c.recoveryMember(); err != nil {
			return nil, err
		}
	}
	tp := topicPartition{topic, partition}
	c.mu.Lock()
	released := m.releasing[tp]
	c.mu.Unlock()
	if released != nil {
		<-released
	}
	pc, err := m.ConsumePartition(topic, partition, offset)
	if err != nil {
		return nil, err
	}
	return &quickPartition{PartitionConsumer: pc, c: c, m: m, tp: tp}, nil
}

func (c *tableConsumer) recoveryMember() (*member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recovery == nil {
		rc, err := c.buildRecovery()
		if err != nil {
			return nil, err
		}
		c.recovery = newMember(rc)
	}
	return c.recovery, nil
}

// recoverySubscriber is the goka method whose partition consumers stop once
// caught up; the live ones come from PartitionTable.CatchupForever.
const recoverySubscriber = "github.com/lovoo/goka.(*PartitionTable).SetupAndRecover"

// inRecovery reports whether goka's table recovery is the caller. goka tells
// its consumer nothing else about why it consumes; should a goka upgrade
// rename the method, recoveries consume with the live wait, which is slower
// to start but correct (TestRecoveriesUseTheShortWait would fail).
func inRecovery() bool {
	var pcs [24]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs[:])])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, recoverySubscriber) {
			return true
		}
		if !more {
			return false
		}
	}
}

func (c *tableConsumer) members() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recovery == nil {
		return []*member{c.live}
	}
	return []*member{c.live, c.recovery}
}

func (c *tableConsumer) Topics() ([]string, error) { return c.live.Topics() }

func (c *tableConsumer) Partitions(topic string) ([]int32, error) { return c.live.Partitions(topic) }

// HighWaterMarks merges the members' marks, the highest of each partition.
func (c *tableConsumer) HighWaterMarks() map[string]map[int32]int64 {
	out := make(map[string]map[int32]int64)
	for _, m := range c.members() {
		for t, ps := range m.HighWaterMarks() {
			if out[t] == nil {
				out[t] = make(map[int32]int64, len(ps))
			}
			for p, hwm := range ps {
				out[t][p] = max(out[t][p], hwm)
			}
		}
	}
	return out
}

func (c *tableConsumer) Close() error {
	var errs []error
	for _, m := range c.members() {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

func (c *tableConsumer) Pause(tps map[string][]int32) {
	for _, m := range c.members() {
		m.Pause(tps)
	}
}

func (c *tableConsumer) Resume(tps map[string][]int32) {
	for _, m := range c.members() {
		m.Resume(tps)
	}
}

func (c *tableConsumer) PauseAll() {
	for _, m := range c.members() {
		m.PauseAll()
	}
}

func (c *tableConsumer) ResumeAll() {
	for _, m := range c.members() {
		m.ResumeAll()
	}
}

// quickPartition hands out sarama's own channels until it is closed, so
// messages take no extra hop.
type quickPartition struct {
	sarama.PartitionConsumer

	c      *tableConsumer
	m      *member
	tp     topicPartition
	once   sync.Once
	closed atomic.Bool
}

var (
	closedMessages = func() chan *sarama.ConsumerMessage {
		ch := make(chan *sarama.ConsumerMessage)
		close(ch)
		return ch
	}()
	closedErrors = func() chan *sarama.ConsumerError {
		ch := make(chan *sarama.ConsumerError)
		close(ch)
		return ch
	}()
)

func (p *quickPartition) Messages() <-chan *sarama.ConsumerMessage {
	if p.closed.Load() {
		return closedMessages
	}
	return p.PartitionConsumer.Messages()
}

func (p *quickPartition) Errors() <-chan *sarama.ConsumerError {
	if p.closed.Load() {
		return closedErrors
	}
	return p.PartitionConsumer.Errors()
}

func (p *quickPartition) AsyncClose() {
	p.once.Do(func() {
		released := make(chan struct{})
		p.c.mu.Lock()
		p.m.releasing[p.tp] = released
		p.c.mu.Unlock()
		p.closed.Store(true)
		pc := p.PartitionConsumer
		pc.AsyncClose()
		go func() {
			// What a caller of sarama's Close does: read both until sarama
			// closes them, which it does once it has let the partition go.
			errsDone := make(chan struct{})
			go func() {
				defer close(errsDone)
				for range pc.Errors() {
				}
			}()
			for range pc.Messages() {
			}
			<-errsDone
			p.c.mu.Lock()
			delete(p.m.releasing, p.tp)
			p.c.mu.Unlock()
			close(released)
		}()
	})
}

// Close is AsyncClose; errors after the close are discarded.
func (p *quickPartition) Close() error {
	p.AsyncClose()
	return nil
}
