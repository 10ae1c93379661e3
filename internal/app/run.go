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
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/processors"
	"github.com/inarious/inarious/views"
)

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

// RunWorker runs one member of the usage processor group until ctx ends;
// on the way out goka commits what it processed and leaves the group.
// With --metrics-listen it also serves its metrics over HTTP.
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

// runWorker reports the worker to obs, if not nil.
//
// goka stops a processor for good when its consumer group loses the brokers
// ("error consuming from group consumer", lovoo/goka#172), and a processor
// runs only once. So until ctx ends the worker builds a new processor over
// the same local storage and counters, with backoff, and rejoins the group
// when Kafka is back; replayed input is skipped by the usage processor.
func runWorker(ctx context.Context, cfg Config, log *slog.Logger, obs *observed) error {
	dataDir := filepath.Join(cfg.DataDir, "worker")
	usage := processors.NewWorkerUsage(cfg.Kafka, log)
	proc, err := processors.NewWorkerFor(usage, cfg.Kafka, dataDir, log)
	if err != nil {
		return err
	}
	if obs != nil {
		// Metrics follow usage across rebuilds; debug pages keep the first processor.
		obs.addWorker(proc, usage)
	}
	const maxBackoff = 5 * time.Second
	backoff := 250 * time.Millisecond
	for {
		log.Info("worker starting", "brokers", cfg.Kafka.Brokers, "group", kafka.UsageGroup)
		started := time.Now()
		err = proc.Run(ctx)
		s := usage.Stats()
		log.Info("worker stopped", "processed", s.Processed, "replays_skipped", s.Replays, "dead_lettered", s.DeadLettered, "err", err)
		if ctx.Err() != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if time.Since(started) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		for {
			log.Warn("worker lost Kafka; rebuilding its processor", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			if proc, err = processors.NewWorkerFor(usage, cfg.Kafka, dataDir, log); err == nil {
				break
			}
		}
	}
}

// RunAPI serves HTTP until ctx ends, then drains requests and flushes every
// accepted activity event before returning.
func RunAPI(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	return runAPI(ctx, cfg, log, ready, newObserved())
}

func runAPI(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string), obs *observed) error {
	if err := cfg.Kafka.EnsureTopics(); err != nil {
		return err
	}
	hub := dashboard.NewHub(log)
	view, err := views.NewUsage(cfg.Kafka, filepath.Join(cfg.DataDir, "api"), log)
	if err != nil {
		return err
	}
	sc := cfg.Kafka.IdempotentProducer()
	em, err := goka.NewEmitter(cfg.Kafka.Brokers, kafka.ActivityTopic, new(codecs.Activity),
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
	handler := api.New(view, pub, clients, append([]api.Option{api.WithLogger(log), api.WithRoutes(func(r *mux.Router) {
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
	select {
	case <-viewDone:
	case <-time.After(cfg.ShutdownTimeout):
		log.Warn("usage view did not stop in time")
	}
	return runErr
}
