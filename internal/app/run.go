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

	"github.com/gorilla/mux"
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
func processorGroups(cfg Config, log *slog.Logger) []stream.Component {
	w, _ := cfg.WindowConfig() // checked by Config.Validate
	return []stream.Component{
		usage.New(usage.WithLogger(log.With("group", usage.Group)), usage.WithWindows(w), usage.WithClientRetention(cfg.ClientRetention)),
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

// usageReader is the usage view, recovered (for /readyz) once the windowed
// views are too.
type usageReader struct {
	*views.Usage
	win *views.Windows
}

func (u usageReader) Recovered() bool { return u.Usage.Recovered() && u.win.Recovered() }

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
	groups := processorGroups(cfg, log)
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
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(processorGroups(cfg, log))...); err != nil {
		return err
	}
	hub := dashboard.NewHub(log)
	view, err := views.NewUsage(cfg.Kafka, filepath.Join(cfg.DataDir, "api"), log, views.OnChange(hub.Observe))
	if err != nil {
		return err
	}
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return err
	}
	win, err := views.NewWindows(cfg.Kafka, wcfg, filepath.Join(cfg.DataDir, "api"), view, log)
	if err != nil {
		return err
	}
	sc := cfg.Kafka.IdempotentProducer()
	em, err := goka.NewEmitter(cfg.Kafka.Brokers, codecs.ActivityTopic, new(codecs.Activity),
		goka.WithEmitterClientID(cfg.Kafka.ClientID),
		goka.WithEmitterHasher(kafka.Hasher),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithEmitterTopicManagerBuilder(cfg.Kafka.TopicManagerBuilder()),
		goka.WithEmitterLogger(kafka.GokaLogger(log)),
	)
	if err != nil {
		return fmt.Errorf("activity emitter: %w", err)
	}
	pub := api.NewPublisher(em, cfg.EventBuffer, log)
	clients, err := newClientResolver(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	obsOpts, releaseObs := obs.apiOptions(cfg, log, view, pub, hub)
	defer releaseObs()
	handler := api.New(usageReader{view, win}, pub, clients, append([]api.Option{api.WithLogger(log), api.WithWindows(win), api.WithRoutes(func(r *mux.Router) {
		userhttp.Register(r, store, userhttp.WithLogger(log), userhttp.WithMaxBodyBytes(cfg.MaxBodyBytes))
	})}, obsOpts...)...)
	if err := useAPIKeys(handler, cfg, log); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http allows 1 MiB of headers; no request of this API needs more than a few KiB.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Event streams last until the client leaves; end them so Shutdown can finish.
	srv.RegisterOnShutdown(hub.Close)

	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	viewDone := make(chan error, 1)
	go func() { viewDone <- view.Run(viewCtx) }()
	winDone := make(chan error, 1)
	go func() { winDone <- win.Run(viewCtx) }()
	// The hub reads the view, so it stops first.
	hubCtx, stopHub := context.WithCancel(viewCtx)
	defer stopHub()
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); hub.Run(hubCtx, view) }()

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
	case err := <-winDone:
		runErr = fmt.Errorf("windowed usage views stopped: %w", err)
		winDone <- err
	}

	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	// Requests are done: every event they produced is queued; flush them all.
	if err := pub.Close(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	st := pub.Stats()
	log.Info("api stopped", "events_accepted", st.Accepted, "delivered", st.Delivered, "failed", st.Failed, "dropped", st.Dropped)
	stopHub()
	<-hubDone
	stopView()
	timeout := time.After(cfg.ShutdownTimeout)
	for _, done := range []chan error{viewDone, winDone} {
		select {
		case <-done:
		case <-timeout:
			log.Warn("views did not stop in time")
			return runErr
		}
	}
	return runErr
}
