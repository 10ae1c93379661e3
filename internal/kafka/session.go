package kafka

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// consumerGroupBuilder is goka's builder over sc, with every session
// reported to c.OnSession first (goka exposes no session of its own).
func (c Config) consumerGroupBuilder(sc *sarama.Config) goka.ConsumerGroupBuilder {
	build := goka.ConsumerGroupBuilderWithConfig(sc)
	if c.OnSession == nil {
		return build
	}
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cg, err := build(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		return sessionReporting{ConsumerGroup: cg, group: group, on: c.OnSession}, nil
	}
}

// sessionReporting reports each session of its group before its handler
// sets it up.
type sessionReporting struct {
	sarama.ConsumerGroup
	group string
	on    func(string, sarama.ConsumerGroupSession)
}

func (s sessionReporting) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return s.ConsumerGroup.Consume(ctx, topics, reportingHandler{ConsumerGroupHandler: h, s: s})
}

type reportingHandler struct {
	sarama.ConsumerGroupHandler
	s sessionReporting
}

func (h reportingHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.s.on(h.s.group, sess)
	return h.ConsumerGroupHandler.Setup(sess)
}
