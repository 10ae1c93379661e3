package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

// processorGroups are the processor groups a worker runs, in the order they
// start. Adding a group is one line here (see the README's walkthrough).
func processorGroups(log *slog.Logger) []stream.Component {
	return []stream.Component{
		usage.New(usage.WithLogger(log.With("group", usage.Group))),
	}
}

// topicsOf is every topic the groups declare; the API ensures them too, so
// that processes can start in any order.
func topicsOf(groups []stream.Component) []kafka.TopicSpec {
	var specs []kafka.TopicSpec
	for _, g := range groups {
		specs = append(specs, g.Topics()...)
	}
	return specs
}

func newClientResolver(list string) (*api.ClientResolver, error) {
	return api.NewClientResolver(splitList(list))
}

// RunAll runs the embedded broker (unless brokers are given), a worker and
// the API in one process until ctx ends. ready, if not nil, gets the API's
// address once it listens.
func RunAll(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	if cfg.Brokers == "" {
		b, err := embedkafka.Start(cfg.EmbeddedKafkaPort, filepath.Join(cfg.DataDir, "kafka"))
		if err != nil {
			return err
		}
		// Closed last, once the API has flushed its events into it.
		defer b.Close()
		cfg.Kafka.Brokers = b.Addrs()
		log.Info("embedded kafka started", "brokers", b.Addrs(), "data", filepath.Join(cfg.DataDir, "kafka"))
	}
	obs := newObserved()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runWorker(gctx, cfg, log.With("role", "worker"), obs) })
	g.Go(func() error { return runAPI(gctx, cfg, log.With("role", "api"), ready, obs) })
	return g.Wait()
}

// RunWorker runs one member of every processor group until ctx ends; on the
// way out each commits what it processed and leaves its group. With
// --metrics-listen it also serves its metrics over HTTP.
func RunWorker(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.MetricsListen == "" {
		return runWorker(ctx, cfg, log, nil)
	}
	obs := newObserved()
	stop, err := obs.serveWorkerMetrics(cfg.MetricsListen, log)
	if err != nil {
		return err
	}
	defer stop()
	return runWorker(ctx, cfg, log, obs)
}

// runWorker reports the groups to obs, if not nil. Each group runs under
// stream.Run, which rebuilds its processor when Kafka goes away; the worker
// ends when ctx ends or a group fails for good.
func runWorker(ctx context.Context, cfg Config, log *slog.Logger, obs *observed) error {
	groups := processorGroups(log)
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(groups)...); err != nil {
		return err
	}
	dataDir := filepath.Join(cfg.DataDir, "worker")
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range groups {
		var onStart func(*goka.Processor)
		if obs != nil {
			obs.metrics.WatchCounters(c.Counters()...)
			onStart = obs.addProcessor
		}
		g.Go(func() error { return c.Run(gctx, cfg.Kafka, dataDir, onStart) })
	}
	return g.Wait()
}

// RunAPI serves HTTP until ctx ends, then drains requests and flushes every
// accepted activity event before returning.
func RunAPI(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	return runAPI(ctx, cfg, log, ready, newObserved())
}

func runAPI(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string), obs *observed) error {
	parts, err := buildAPI(ctx, cfg, log, obs)
	if err != nil {
		return err
	}
	defer parts.release()
	return parts.serve(ctx, cfg, log, ready)
}

// apiParts is everything the API process runs, built before anything runs.
type apiParts struct {
	view    *views.Usage
	hub     *dashboard.Hub
	pub     *api.Publisher
	handler http.Handler
	// release closes what building opened (users store, metrics client),
	// after everything has stopped.
	release func()
}

// buildAPI creates the topics every component declares (so processes can
// start in any order), then the usage view, the dashboard hub, the activity
// publisher, the users store and the handler.
func buildAPI(ctx context.Context, cfg Config, log *slog.Logger, obs *observed) (*apiParts, error) {
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(processorGroups(log))...); err != nil {
		return nil, err
	}
	hub := dashboard.NewHub(log)
	view, err := views.NewUsage(cfg.Kafka, filepath.Join(cfg.DataDir, "api"), log, views.OnChange(hub.Observe))
	if err != nil {
		return nil, err
	}
	em, err := goka.NewEmitter(cfg.Kafka.Brokers, codecs.ActivityTopic, new(codecs.Activity),
		goka.WithEmitterClientID(cfg.Kafka.ClientID),
		goka.WithEmitterHasher(kafka.Hasher),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(cfg.Kafka.IdempotentProducer())),
		goka.WithEmitterTopicManagerBuilder(cfg.Kafka.TopicManagerBuilder()),
		goka.WithEmitterLogger(kafka.GokaLogger(log)),
	)
	if err != nil {
		return nil, fmt.Errorf("activity emitter: %w", err)
	}
	pub := api.NewPublisher(em, cfg.EventBuffer, log)
	clients, err := newClientResolver(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	keys, err := loadAPIKeys(cfg, log)
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	obsOpts, releaseObs := obs.apiOptions(cfg, log, view, pub, hub)
	release := func() {
		releaseObs()
		if err := store.Close(); err != nil {
			log.Warn("users store close", "err", err)
		}
	}
	handler, err := api.New(view, pub, clients, append([]api.Option{
		api.WithLogger(log),
		api.WithAPIKeys(keys),
		api.WithRoutes(userhttp.Routes(store, userhttp.WithLogger(log), userhttp.WithMaxBodyBytes(cfg.MaxBodyBytes))...),
	}, obsOpts...)...)
	if err != nil {
		release()
		return nil, err
	}
	return &apiParts{view: view, hub: hub, pub: pub, handler: handler, release: release}, nil
}

// serve runs the view, the dashboard hub and the HTTP server until ctx ends
// or one of them fails, then stops them in this order:
//
//  1. the HTTP server: no new connections, requests finish (dashboard streams
//     are ended by the hub's Close on shutdown);
//  2. the publisher: every event the finished requests queued is flushed to
//     Kafka (within --shutdown-timeout);
//  3. the dashboard hub, which reads the view;
//  4. the view.
func (p *apiParts) serve(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           p.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http allows 1 MiB of headers; no request of this API needs more than a few KiB.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(p.hub.Close)

	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	viewDone := make(chan error, 1)
	go func() { viewDone <- p.view.Run(viewCtx) }()
	hubCtx, stopHub := context.WithCancel(viewCtx)
	defer stopHub()
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); p.hub.Run(hubCtx, p.view) }()

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("api listening", "addr", ln.Addr().String(), "brokers", cfg.Kafka.Brokers)
	if ready != nil {
		ready(ln.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-viewDone:
		runErr = fmt.Errorf("usage view stopped: %w", err)
		viewDone <- err
	}

	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := p.pub.Close(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	st := p.pub.Stats()
	log.Info("api stopped", "events_accepted", st.Accepted, "delivered", st.Delivered, "failed", st.Failed, "dropped", st.Dropped)
	stopHub()
	<-hubDone
	stopView()
	select {
	case <-viewDone:
	case <-time.After(cfg.ShutdownTimeout):
		log.Warn("usage view did not stop in time")
	}
	return runErr
}
