package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/middleware"
	"github.com/inarious/inarious/processors/dedupe"
)

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

// groupInputs are what every group that reads Users is built with: the
// decoder of its records and the windowing.
func groupInputs(cfg Config) (*confluent.Decoder, windows.Config, error) {
	decoder, err := activityDecoder(cfg)
	if err != nil {
		return nil, windows.Config{}, err
	}
	w, err := cfg.WindowConfig()
	return decoder, w, err
}

// topicsOf is every topic the groups declare; the API ensures them too, so
// that processes can start in any order.
func topicsOf(groups []*workerGroup) []kafka.TopicSpec {
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
	cfg.alerting = newWorkerAlerting(cfg, log)
	groups, err := buildGroups(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(groups)...); err != nil {
		return err
	}
	if cfg.QueryListen != "" {
		// Before the groups run: it sets the user data they join with.
		stop, err := startQueryServer(&cfg, groups, log)
		if err != nil {
			return err
		}
		// After the groups have left: until then it refuses on its own.
		defer stop()
	}
	leases := followLeases(&cfg, groups, log)
	defer leases.close()
	dataDir := filepath.Join(cfg.DataDir, "worker")
	g, gctx := errgroup.WithContext(ctx)
	for _, wg := range groups {
		onStart := wg.onStart
		if obs != nil {
			obs.metrics.WatchCounters(wg.Counters()...)
			obs.metrics.WatchCounters(wg.queryCounters...)
			onStart = func(p *goka.Processor) {
				obs.addProcessor(p)
				if wg.onStart != nil {
					wg.onStart(p)
				}
			}
		}
		g.Go(func() error { return wg.Run(gctx, cfg.Kafka, dataDir, onStart) })
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
	tables []*servedTable
	pub    *api.Publisher
	// ingest publishes the ingest endpoints' events: pub itself without
	// dedupe.
	ingest *api.Publisher
	// registrar registers the activity schema (nil without --schema-registry).
	registrar *confluent.Registrar
	handler   http.Handler
	// otlpGRPC is the OTLP/gRPC receiver (nil without --otlp-grpc-listen).
	otlpGRPC *grpc.Server
	// release closes what building opened (tables, users store, metrics
	// client), after everything has stopped.
	release func()
}

// buildAPI creates the topics every component declares (so processes can
// start in any order), then the served tables, the activity publisher, the
// users store and the handler.
func buildAPI(ctx context.Context, cfg Config, log *slog.Logger, obs *observed) (*apiParts, error) {
	groups, err := buildGroups(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := cfg.Kafka.EnsureTopics(ctx, topicsOf(groups)...); err != nil {
		return nil, err
	}
	tables, err := buildTables(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	closeTables := func() {
		for _, t := range tables {
			t.close()
		}
	}
	p, err := buildHandler(ctx, cfg, log, obs, tables)
	if err != nil {
		closeTables()
		return nil, err
	}
	release := p.release
	p.release = func() { release(); closeTables() }
	return p, nil
}

// buildHandler builds the publisher, the users store and the handler over
// the served tables.
func buildHandler(ctx context.Context, cfg Config, log *slog.Logger, obs *observed, tables []*servedTable) (*apiParts, error) {
	// With a schema registry every record is framed with the id of the
	// registered schema: until it is registered, events wait in the queue.
	var eventCodec goka.Codec = new(codecs.Activity)
	var pubOpts []api.Option
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
	pub := api.NewEventPublisher(prod, cfg.EventBuffer, append(pubOpts, api.WithLogger(log))...)
	// Ingested events are retried by their senders: with dedupe they go
	// through the dedupe stage, on their own topic and publisher.
	ingest := pub
	if cfg.DedupeWindow > 0 {
		iprod, err := activityProducerTo(cfg, dedupe.IngestTopic, eventCodec, log)
		if err != nil {
			return nil, fmt.Errorf("ingest emitter: %w", err)
		}
		ingest = api.NewEventPublisher(iprod, cfg.EventBuffer, append(pubOpts, api.WithLogger(log.With("publisher", "ingest")))...)
	}
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
	obsOpts, releaseObs := obs.apiOptions(cfg, log, pub, ingest, tables)
	release := func() {
		releaseObs()
		if err := store.Close(); err != nil {
			log.Warn("users store close", "err", err)
		}
	}
	otlpOpts := []otlpin.Option{otlpin.WithLogger(log.With("component", "otlp")),
		otlpin.WithMaxBodyBytes(cfg.MaxBodyBytes), otlpin.WithClientAttribute(cfg.OTLPClientAttribute)}
	opts := []api.Option{
		api.WithLogger(log),
		api.WithAPIKeys(keys),
		api.WithRoutes(userhttp.Routes(store, userhttp.WithLogger(log), userhttp.WithMaxBodyBytes(cfg.MaxBodyBytes))...),
		api.WithRoutes(otlpin.Routes(ingest, otlpOpts...)...),
	}
	opts = append(append(append(opts, tablesOptions(tables)...), obsOpts...), apiOpts...)
	handler, err := api.New(pub, clients, opts...)
	if err != nil {
		release()
		return nil, err
	}
	parts := &apiParts{tables: tables, pub: pub, ingest: ingest, registrar: registrar, handler: handler, release: release}
	if cfg.OTLPGRPCListen != "" {
		parts.otlpGRPC = otlpin.NewGRPCServer(ingest, append(otlpOpts, otlpin.WithAPIKeys(keys))...)
	}
	return parts, nil
}

// serve runs the tables' parts (views, owners trackers, dashboard hub) and
// the HTTP server until ctx ends or one of them fails, then stops them in
// this order:
//
//  1. the HTTP server: no new connections, requests finish (dashboard streams
//     are ended on shutdown);
//  2. the publisher: every event the finished requests queued is flushed to
//     Kafka (within --shutdown-timeout);
//  3. the parts, in the reverse order of their start: the dashboard hub
//     before the views it reads.
func (p *apiParts) serve(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var gln net.Listener
	if p.otlpGRPC != nil {
		if gln, err = net.Listen("tcp", cfg.OTLPGRPCListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen %s: %w", cfg.OTLPGRPCListen, err)
		}
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
	var parts []part
	for _, t := range p.tables {
		parts = append(parts, t.parts...)
		for _, f := range t.onShutdown {
			srv.RegisterOnShutdown(f)
		}
	}
	if p.registrar != nil {
		// Retries with backoff until registered; /readyz reports it meanwhile.
		parts = append(parts, part{"schema registration", func(ctx context.Context) error {
			_ = p.registrar.Run(ctx)
			<-ctx.Done()
			return nil
		}})
	}
	running := start(ctx, parts)

	serveDone := make(chan error, 2)
	go func() { serveDone <- fmt.Errorf("http server: %w", srv.Serve(ln)) }()
	log.Info("api listening", "addr", ln.Addr().String(), "brokers", cfg.Kafka.Brokers)
	if gln != nil {
		go func() { serveDone <- fmt.Errorf("otlp/grpc server: %w", p.otlpGRPC.Serve(gln)) }()
		log.Info("otlp/grpc listening", "addr", gln.Addr().String())
	}
	if ready != nil {
		ready(ln.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		runErr = err
	case runErr = <-running.failed:
	}

	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if p.otlpGRPC != nil {
		stopGRPC(sctx, p.otlpGRPC, log)
	}
	if err := p.pub.Close(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	st := p.pub.Stats()
	if p.ingest != p.pub {
		if err := p.ingest.Close(sctx); err != nil {
			runErr = errors.Join(runErr, err)
		}
		in := p.ingest.Stats()
		log.Info("ingest publisher stopped", "events_accepted", in.Accepted, "delivered", in.Delivered, "failed", in.Failed, "dropped", in.Dropped)
	}
	log.Info("api stopped", "events_accepted", st.Accepted, "delivered", st.Delivered, "failed", st.Failed, "dropped", st.Dropped)
	if !running.stop(cfg.ShutdownTimeout) {
		log.Warn("views did not stop in time")
	}
	return runErr
}

// stopGRPC lets running exports finish, as the HTTP server's Shutdown does,
// and ends those still running when ctx ends.
func stopGRPC(ctx context.Context, srv *grpc.Server, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		log.Warn("otlp/grpc shutdown: exports still running were ended")
		srv.Stop()
		<-done
	}
}

// activityProducer is what the API's activity events are produced with:
// the middleware package's Kafka transport, as any Go service's. franz-go
// batches per partition with less work per record than sarama's producer
// (BENCHMARKS.md, "Cost per request"), and its events skip goka's emitter
// and promises; both are idempotent, partition with kafka.Hasher and send
// uncompressed.
func activityProducer(cfg Config, codec goka.Codec, log *slog.Logger) (api.EventProducer, error) {
	return activityProducerTo(cfg, codecs.ActivityTopic, codec, log)
}

// activityProducerTo is activityProducer to another topic keyed alike.
func activityProducerTo(cfg Config, topic goka.Stream, codec goka.Codec, log *slog.Logger) (api.EventProducer, error) {
	if cfg.APIProducer == kafka.ProducerFranz {
		return middleware.NewKafkaTransport(cfg.Kafka.Brokers, middleware.KafkaClientID(cfg.Kafka.ClientID), middleware.KafkaTopic(string(topic)),
			middleware.KafkaLinger(cfg.Kafka.FlushInterval), middleware.KafkaCodec(codec))
	}
	em, err := goka.NewEmitter(cfg.Kafka.Brokers, topic, codec, cfg.Kafka.EmitterOptions(log)...)
	if err != nil {
		return nil, err
	}
	return api.EmitterProducer(em), nil
}
