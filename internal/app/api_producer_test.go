package app_test

import (
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
)

// Each --api-producer gets every request counted exactly once: franz-go
// straight from the publisher, sarama through goka's emitter.
func TestEveryAPIProducerCountsEachRequestOnce(t *testing.T) {
	for _, producer := range []string{kafka.ProducerFranz, kafka.ProducerSarama} {
		t.Run(producer, func(t *testing.T) {
			s := &system{apptest.Start(t, nil, func(c *app.Config) { c.APIProducer = producer })}
			const client, n = "198.51.100.9", 25
			for i := range n {
				if code := s.call(t, "GET", "/healthz", client, ""); code != 200 {
					t.Fatalf("call %d: status %d", i, code)
				}
			}
			testutil.Eventually(t, 30*time.Second, s.counts(t, client, map[string]uint64{"GET /healthz": n}))
		})
	}
}
