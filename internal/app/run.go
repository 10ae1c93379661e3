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
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

// processorGroups are the processor groups a worker runs, in the order they
// start. Adding a group is one line here (see the README's walkthrough).
func processorGroups(cfg Config, log *slog.Logger, extra ...usage.Option) ([]stream.Component, error) {
	decoder, err := activityDecoder(cfg)
	if err != nil {
		return nil, err
	}
	w, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	opts := append([]usage.Option{usage.WithLogger(log.With("group", usage.Group)), usage.WithDecoder(decoder),
		usage.WithWindows(w), usage.WithClientRetention(cfg.ClientRetention)}, extra...)
	if cfg.QueryListen != "" {
		// The query endpoint answers windowed reads from the joined partitions.
		opts = append(opts, usage.WithWindowJoins())
	}
	return []stream.Component{usage.New(opts...)}, nil
}

// registryClient is the schema registry's client, nil without --schema-registry.
func registryClient(cfg Config) (*sr.Client, error) {
	if cfg.SchemaRegistry == "" {
		return nil, nil
	}
	cl, err := confluent.NewClient(cfg.SchemaRegistry)
	if err != nil {
		return nil, fmt.Errorf("--schema-registry: %w", err)
	}
	return cl, nil
}

// activityDecoder reads plain and Confluent-framed activity records,
// checking framed records' schema ids with the registry when there is one.
func activityDecoder(cfg Config) (*confluent.Decoder, error) {
	cl, err := registryClient(cfg)
	if err != nil {
		return nil, err
	}
	return confluent.NewDecoder(cl, confluent.Subject), nil
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

// usageReader is the usage reader, recovered (for /readyz) once the windowed
// views are too.
type usageReader struct {
	api.UsageReader
	win *views.Windows
}

func (u usageReader) Recovered() bool { return u.UsageReader.Recovered() && u.win.Recovered() }

// viewReader is the usage view as the API's reader.
type viewReader struct{ *views.Usage }

func (v viewReader) Page(after *top.Key, limit int) ([]top.Row, int, error) {
	return v.Usage.Page(after, limit), v.Usage.Clients(), nil
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
	// A worker serving queries ranks its own clients for GET /usage.
	var own *top.Index
	var extra []usage.Option
	if cfg.QueryListen != "" {
		own = top.New()
		extra = append(extra, usage.WithTopIndex(own))
	}
	groups, err := processorGroups(cfg, log, extra...)
	if err != nil {
		return err
	}
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(groups)...); err != nil {
		return err
	}
	var qs *queryServer
	if cfg.QueryListen != "" {
		// Before the groups are built: it sets the user data they join with.
		if qs, err = startQueryServer(ctx, &cfg, own, log); err != nil {
			return err
		}
		// After the groups have left: until then it refuses on its own.
		defer qs.stop()
		if obs != nil {
			obs.metrics.WatchCounters(
				metrics.Counter{Name: "usage_query_answered_total", Help: "Reads of owned partitions this worker answered.", Value: qs.worker.Answered},
				metrics.Counter{Name: "usage_query_refused_total", Help: "Reads this worker refused: partition not owned, or rebalancing.", Value: qs.worker.Refused})
		}
	}
	dataDir := filepath.Join(cfg.DataDir, "worker")
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range groups {
		var onStart func(*goka.Processor)
		if obs != nil {
			obs.metrics.WatchCounters(c.Counters()...)
			onStart = obs.addProcessor
		}
		if qs != nil {
			onStart = onUsageProcessor(onStart, qs.worker.SetProcessor)
			if u, ok := c.(*usage.Processor); ok {
				qs.worker.SetWindows(u.Windows(), u)
			}
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
	// view is nil with --usage-source=workers, routed otherwise; the hub
	// reads hubSource (the view, or the workers through routed).
	view      *views.Usage
	hub       *dashboard.Hub
	hubSource dashboard.Source
	routed    *routedUsage
	win       *views.Windows
	pub       *api.Publisher
	// registrar registers the activity schema (nil without --schema-registry).
	registrar *confluent.Registrar
	handler   http.Handler
	// release closes what building opened (users store, metrics client),
	// after everything has stopped.
	release func()
}

// buildAPI creates the topics every component declares (so processes can
// start in any order), then the usage view, the dashboard hub, the activity
// publisher, the users store and the handler.
func buildAPI(ctx context.Context, cfg Config, log *slog.Logger, obs *observed) (*apiParts, error) {
	groups, err := processorGroups(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(groups)...); err != nil {
		return nil, err
	}
	var (
		hub       = dashboard.NewHub(log)
		hubSource dashboard.Source
		view      *views.Usage
		routed    *routedUsage
		reader    api.UsageReader
	)
	if cfg.UsageSource == UsageFromWorkers {
		if routed, err = newRoutedUsage(cfg, log); err != nil {
			return nil, err
		}
		reader = routed.reader
		hubSource = newRoutedDashboard(routed.reader, dashboard.TopClients, log.With("component", "dashboard"))
	} else {
		if view, err = views.NewUsage(cfg.Kafka, filepath.Join(cfg.DataDir, "api"), views.WithLogger(log)); err != nil {
			return nil, err
		}
		reader = viewReader{view}
		hubSource = view
	}
	// The windowed views merge closed buckets with the open ones in the
	// client's row. They hold every client's buckets, so an API reading
	// from the workers (which keeps no table) asks the owner instead, which
	// joins its own partitions of the windowed topics.
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	var win *views.Windows
	var winReader api.WindowReader
	if routed == nil {
		if win, err = views.NewWindows(cfg.Kafka, wcfg, filepath.Join(cfg.DataDir, "api"), view, views.WithLogger(log)); err != nil {
			return nil, err
		}
		reader = usageReader{viewReader{view}, win}
		winReader = win
	} else {
		winReader = routed.reader.Windows(wcfg)
	}
	// With a schema registry every record is framed with the id of the
	// registered schema: until it is registered, events wait in the queue.
	var eventCodec goka.Codec = new(codecs.Activity)
	var pubOpts []api.PublisherOption
	var apiOpts []api.Option
	var registrar *confluent.Registrar
	if cl, err := registryClient(cfg); err != nil {
		return nil, err
	} else if cl != nil {
		registrar = confluent.NewRegistrar(cl, confluent.Subject, confluent.WithLogger(log.With("component", "schema-registry")))
		eventCodec = registrar.Codec()
		pubOpts = append(pubOpts, api.HoldUntil(registrar.Registered()))
		apiOpts = append(apiOpts, api.WithReadinessCheck(api.ReadinessCheck{Name: "schema_registry", Check: func() (bool, any) {
			st := registrar.Status()
			return st.Ready, st
		}}))
	}
	prod, err := activityProducer(cfg, eventCodec, log)
	if err != nil {
		return nil, fmt.Errorf("activity emitter: %w", err)
	}
	if cfg.APIProducer == kafka.ProducerFranz {
		// kgo.Produce returns at once: its buffer holds more records than
		// the publisher lets be in flight.
		pubOpts = append(pubOpts, api.ProduceOnPublish())
	}
	pub := api.NewEventPublisher(prod, cfg.EventBuffer, log, pubOpts...)
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
	var obsOpts []api.Option
	var releaseObs func()
	if routed != nil {
		obsOpts, releaseObs = obs.routedOptions(cfg, log, routed, pub, hub)
		apiOpts = append(apiOpts, api.WithReadinessCheck(routed.readiness()))
	} else {
		obsOpts, releaseObs = obs.apiOptions(cfg, log, view, pub, hub)
	}
	release := func() {
		releaseObs()
		if err := store.Close(); err != nil {
			log.Warn("users store close", "err", err)
		}
	}
	handler, err := api.New(reader, pub, clients, append(append([]api.Option{
		api.WithLogger(log),
		api.WithAPIKeys(keys),
		api.WithWindows(winReader),
		api.WithRoutes(userhttp.Routes(store, userhttp.WithLogger(log), userhttp.WithMaxBodyBytes(cfg.MaxBodyBytes))...),
	}, obsOpts...), apiOpts...)...)
	if err != nil {
		release()
		return nil, err
	}
	return &apiParts{view: view, win: win, hub: hub, hubSource: hubSource, routed: routed, pub: pub, registrar: registrar, handler: handler, release: release}, nil
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
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	viewDone := make(chan error, 1)
	hubCtx, stopHub := context.WithCancel(viewCtx)
	defer stopHub()
	hubDone := make(chan struct{})
	if p.routed != nil {
		// Workers mode: the owners map stands where the view stood.
		go func() { p.routed.tracker.Run(viewCtx); viewDone <- nil }()
		defer p.routed.reader.Close()
	} else {
		go func() { viewDone <- p.view.Run(viewCtx) }()
	}
	srv.RegisterOnShutdown(p.hub.Close)
	go func() { defer close(hubDone); p.hub.Run(hubCtx, p.hubSource) }()
	var winDone chan error // nil, so never ready, without windowed views
	if p.win != nil {
		winDone = make(chan error, 1)
		go func() { winDone <- p.win.Run(viewCtx) }()
	}
	if p.registrar != nil {
		// Retries with backoff until registered; /readyz reports it meanwhile.
		go func() { _ = p.registrar.Run(viewCtx) }()
	}

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
	if err := p.pub.Close(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	st := p.pub.Stats()
	log.Info("api stopped", "events_accepted", st.Accepted, "delivered", st.Delivered, "failed", st.Failed, "dropped", st.Dropped)
	stopHub()
	<-hubDone
	stopView()
	timeout := time.After(cfg.ShutdownTimeout)
	for _, done := range []chan error{viewDone, winDone} {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-timeout:
			log.Warn("views did not stop in time")
			return runErr
		}
	}
	return runErr
}

// activityProducer is what the API's activity events are produced with.
// franz-go batches per partition with less work per record than sarama's
// producer (BENCHMARKS.md, "Cost per request"), and its events skip goka's
// emitter and promises; both are idempotent and partition with
// kafka.Hasher. Uncompressed, as sarama sends them: events are small, and a
// broker validating compressed batches decompresses them, which costs it
// more than the bytes save.
func activityProducer(cfg Config, codec goka.Codec, log *slog.Logger) (api.EventProducer, error) {
	if cfg.APIProducer == kafka.ProducerFranz {
		return stream.NewFranzEmitter(cfg.Kafka.Brokers, cfg.Kafka.ClientID, codecs.ActivityTopic, codec, kafka.Hasher,
			cfg.Kafka.FlushInterval, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	em, err := goka.NewEmitter(cfg.Kafka.Brokers, codecs.ActivityTopic, codec, cfg.Kafka.EmitterOptions(log)...)
	if err != nil {
		return nil, err
	}
	return api.EmitterProducer(em), nil
}
