package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	dto "github.com/prometheus/client_model/go"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/testutil"
)

// downEmitter fails every delivery, like a producer whose broker is away.
type downEmitter struct{}

func (downEmitter) Emit(string, any) (*goka.Promise, error) {
	p, finish := goka.NewPromiseWithFinisher()
	finish(nil, errors.New("broker unreachable"))
	return p, nil
}

func (downEmitter) Finish() error { return nil }

func family(t *testing.T, m *metrics.Metrics, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// inarious_events_failed_total counts accepted events lost at shutdown; a
// failed delivery while running is retried, not counted. The help text must
// say so.
func TestEventsFailedCountsEventsLostAtShutdown(t *testing.T) {
	pub := api.NewPublisher(downEmitter{}, 16)
	m := metrics.New()
	m.WatchCounters(pub.Counters()...)
	const n = 3
	for range n {
		pub.Publish(&activitypb.BackendApiActivity{Client: "c"})
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.Retried >= n, fmt.Sprintf("retried %d, want >= %d", st.Retried, n)
	})
	failed := func() float64 {
		return family(t, m, "inarious_events_failed_total").GetMetric()[0].GetCounter().GetValue()
	}
	if got := failed(); got != 0 {
		t.Errorf("failed = %v while running, want 0: failures are retried", got)
	}
	if got, want := family(t, m, "inarious_events_retried_total").GetMetric()[0].GetCounter().GetValue(), float64(pub.Stats().Retried); got < n || got > want {
		t.Errorf("retried = %v while running, want the %d or more retries the publisher made (%v by now)", got, n, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time to deliver anything
	_ = pub.Close(ctx)
	if got := failed(); got != n {
		t.Errorf("failed = %v after shutdown, want the %d undelivered events", got, n)
	}
	help := family(t, m, "inarious_events_failed_total").GetHelp()
	for _, w := range []string{"shutdown", "retried"} {
		if !strings.Contains(help, w) {
			t.Errorf("help %q does not mention %q", help, w)
		}
	}
}
