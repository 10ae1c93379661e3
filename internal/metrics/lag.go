package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inarious/inarious/internal/kafka"
)

// ViewStats is the part of views.Usage lag measurement needs.
type ViewStats interface {
	Stats(ctx context.Context) *goka.ViewStats
}

// Lag measures consumer lag per partition against the partitions' high-water
// marks (the next offset to be written), fetched on every scrape:
//
//   - consumer=<group>: the group's committed offsets on its input topic,
//     i.e. the lag any Kafka tool reports (kafka.ConsumerLag, also for
//     partitions with no commit); it works from any process, with or
//     without a worker in it, and trails by the commit interval (1 s).
//   - consumer="view": the view's last consumed table offset from goka's view
//     stats. goka's own OffsetLag is refreshed only every 60 s, hence our own
//     high-water marks. A partition that has consumed nothing since start
//     has no known position: it reports 0 once running (it caught up to the
//     high-water mark then), and nothing before that.
type Lag struct {
	client  sarama.Client
	admin   sarama.ClusterAdmin
	sources []LagSource
	timeout time.Duration
	log     *slog.Logger
	desc    *prometheus.Desc

	mu      sync.Mutex
	running chan struct{} // closed when the measurement in flight ends
	last    []lagSample
}

type lagSample struct {
	consumer, topic string
	partition       int32
	lag             int64
}

// LagSource is one processor group's consumers: the group on its input
// topic and, if not nil, a view of its table.
type LagSource struct {
	Group, Input string
	View         ViewStats
	Table        string
}

// LagOption configures NewLag.
type LagOption func(**slog.Logger)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) LagOption { return func(l **slog.Logger) { *l = log } }

// NewLag measures the lag of each source's group and view. It uses client,
// which the caller closes after the registry is done.
func NewLag(client sarama.Client, sources []LagSource, opts ...LagOption) (*Lag, error) {
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
	return &Lag{
		client: client, admin: admin, sources: sources,
		timeout: 3 * time.Second, log: log,
		desc: prometheus.NewDesc(Namespace+"_consumer_lag",
			"Records between a consumer's position and the partition's high-water mark.",
			[]string{"consumer", "topic", "partition"}, nil),
	}, nil
}

// Describe implements prometheus.Collector.
func (l *Lag) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

// Collect implements prometheus.Collector. A broker that does not answer in
// time leaves the previous samples in place rather than stalling the scrape;
// at most one measurement runs at a time.
func (l *Lag) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	if l.running == nil {
		done := make(chan struct{})
		l.running = done
		go func() {
			s := l.measure()
			l.mu.Lock()
			l.last, l.running = s, nil
			l.mu.Unlock()
			close(done)
		}()
	}
	done := l.running
	l.mu.Unlock()
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		l.log.Warn("consumer lag measurement is slow; reporting the previous one")
	}
	l.mu.Lock()
	samples := l.last
	l.mu.Unlock()
	for _, s := range samples {
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(s.lag),
			s.consumer, s.topic, strconv.Itoa(int(s.partition)))
	}
}

func (l *Lag) measure() []lagSample {
	var out []lagSample
	for _, src := range l.sources {
		out = append(out, l.measureSource(src)...)
	}
	return out
}

func (l *Lag) measureSource(src LagSource) []lagSample {
	var out []lagSample
	lags, err := kafka.ConsumerLag(l.client, l.admin, src.Group, src.Input)
	if err != nil {
		l.log.Warn("consumer lag", "group", src.Group, "topic", src.Input, "err", err)
	}
	for p, lag := range lags { // what could be measured, despite err
		out = append(out, lagSample{src.Group, src.Input, p, lag})
	}
	if src.View == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	for p, ts := range src.View.Stats(ctx).Partitions {
		if ts == nil || ts.Input == nil {
			continue
		}
		if ts.Input.Count == 0 {
			if ts.Status == goka.PartitionRunning {
				out = append(out, lagSample{"view", src.Table, p, 0})
			}
			continue
		}
		hwm, err := l.client.GetOffset(src.Table, p, sarama.OffsetNewest)
		if err != nil {
			l.log.Warn("consumer lag: high-water mark", "topic", src.Table, "partition", p, "err", err)
			continue
		}
		out = append(out, lagSample{"view", src.Table, p, max(hwm-(ts.Input.LastOffset+1), 0)})
	}
	return out
}
