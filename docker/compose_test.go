package docker

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/inarious/inarious/internal/app"
)

const (
	composeFile    = "docker-compose.yml"
	envExampleFile = ".env.example"
	dockerfileName = "Dockerfile"
	buildFlagsFile = "buildflags.txt"

	// testArangoPassword stands in for the one .env.example leaves empty.
	testArangoPassword = "test-root-password"
)

// envExample is docker/.env.example as compose would read it.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read(envExampleFile)
	if err != nil {
		t.Fatalf("read %s: %v", envExampleFile, err)
	}
	return env
}

func loadProject(env map[string]string) (*types.Project, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return nil, err
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, composeFile)}},
		Environment: env,
	}
	return loader.LoadWithContext(context.Background(), details)
}

// project loads the compose file with .env.example plus the one required
// secret, i.e. as `docker compose up` sees it after the documented setup.
func project(t *testing.T) *types.Project {
	t.Helper()
	env := envExample(t)
	env["ARANGO_ROOT_PASSWORD"] = testArangoPassword
	p, err := loadProject(env)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// acceptedEnv is every environment variable the binary reads.
func acceptedEnv() map[string]bool {
	cfg := app.Defaults()
	fs := app.FlagSet("x", &cfg)
	out := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { out[app.EnvName(f.Name)] = true })
	return out
}

func TestComposeLoadsWithEnvExample(t *testing.T) {
	p := project(t)
	want := []string{"api", "arangodb", "kafka-ui", "kafka1", "kafka2", "kafka3", "registry", "worker"}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
}

// The root password has no default: a copy of .env.example that nobody
// edited must not start ArangoDB with an empty or well-known password.
func TestComposeRequiresArangoPassword(t *testing.T) {
	env := envExample(t)
	if v, ok := env["ARANGO_ROOT_PASSWORD"]; !ok || v != "" {
		t.Fatalf("%s: ARANGO_ROOT_PASSWORD = %q (present %v), want it listed and empty", envExampleFile, v, ok)
	}
	_, err := loadProject(env)
	if err == nil || !strings.Contains(err.Error(), "ARANGO_ROOT_PASSWORD") {
		t.Fatalf("loading without ARANGO_ROOT_PASSWORD: err = %v, want a required-variable error naming it", err)
	}
}

func TestCompose(t *testing.T) {
	p := project(t)
	svc := func(name string) types.ServiceConfig {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("service %q missing", name)
		}
		return s
	}
	kafkas := []types.ServiceConfig{svc("kafka1"), svc("kafka2"), svc("kafka3")}
	arango, api, worker := svc("arangodb"), svc("api"), svc("worker")
	// eachKafka joins check's errors over the three brokers.
	eachKafka := func(check func(i int, k types.ServiceConfig) error) error {
		var errs []error
		for i, k := range kafkas {
			if err := check(i+1, k); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.Name, err))
			}
		}
		return errors.Join(errs...)
	}
	bootstrap := "kafka1:9092,kafka2:9092,kafka3:9092"
	registry, kafkaUI := svc("registry"), svc("kafka-ui")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name  string
		check func() error
	}{
		{"kafka image pinned to apache/kafka 4.x.y", func() error {
			return eachKafka(func(_ int, k types.ServiceConfig) error { return matches(k.Image, `^apache/kafka:4\.\d+\.\d+$`) })
		}},
		{"arangodb image pinned to arangodb 3.12.z", func() error {
			return matches(arango.Image, `^arangodb:3\.12\.\d+$`)
		}},
		{"kafka healthcheck asks the broker for API versions", func() error {
			return eachKafka(func(_ int, k types.ServiceConfig) error {
				return healthcheck(k, "/opt/kafka/bin/kafka-broker-api-versions.sh", "--bootstrap-server", "localhost:9092")
			})
		}},
		{"arangodb healthcheck hits /_admin/server/availability", func() error {
			return healthcheck(arango, "wget", "http://127.0.0.1:8529/_admin/server/availability")
		}},
		{"api healthcheck hits /readyz", func() error {
			return healthcheck(api, "wget", "http://127.0.0.1:8080/readyz")
		}},
		{"three KRaft nodes in combined mode, one quorum of three voters, one cluster id", func() error {
			id := env(kafkas[0])["CLUSTER_ID"]
			return eachKafka(func(i int, k types.ServiceConfig) error {
				return wantEnv(env(k), map[string]string{
					"CLUSTER_ID":                             id,
					"KAFKA_NODE_ID":                          fmt.Sprint(i),
					"KAFKA_PROCESS_ROLES":                    "broker,controller",
					"KAFKA_CONTROLLER_QUORUM_VOTERS":         "1@kafka1:9093,2@kafka2:9093,3@kafka3:9093",
					"KAFKA_ADVERTISED_LISTENERS":             fmt.Sprintf("PLAINTEXT://kafka%d:9092", i),
					"KAFKA_AUTO_CREATE_TOPICS_ENABLE":        "false",
					"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
				})
			})
		}},
		{"every topic, internal ones too, has 3 replicas and min.insync.replicas 2", func() error {
			return errors.Join(
				eachKafka(func(_ int, k types.ServiceConfig) error {
					return wantEnv(env(k), map[string]string{
						"KAFKA_DEFAULT_REPLICATION_FACTOR":                       "3",
						"KAFKA_MIN_INSYNC_REPLICAS":                              "2",
						"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "3",
						"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "3",
						"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "2",
						"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "3",
						"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "2",
					})
				}),
				wantEnv(env(api), map[string]string{"INARIOUS_REPLICATION": "3", "INARIOUS_MIN_INSYNC_REPLICAS": "2"}),
			)
		}},
		{"Inarious' settings pass the binary's validation", func() error {
			for _, s := range []types.ServiceConfig{api, worker} {
				cfg, err := app.Parse(s.Name, nil, lookup(env(s)))
				if err != nil {
					return err
				}
				if cfg.Kafka.Replication != 3 || cfg.Kafka.MinInsyncReplicas != 2 || len(cfg.Kafka.Brokers) != 3 {
					return fmt.Errorf("%s: replication %d, min.insync.replicas %d, brokers %v", s.Name, cfg.Kafka.Replication, cfg.Kafka.MinInsyncReplicas, cfg.Kafka.Brokers)
				}
			}
			return nil
		}},
		{"kafka and arangodb keep their data in named volumes", func() error {
			return errors.Join(
				eachKafka(func(_ int, k types.ServiceConfig) error {
					return errors.Join(namedVolume(k, "/var/lib/kafka/data"),
						wantEnv(env(k), map[string]string{"KAFKA_LOG_DIRS": "/var/lib/kafka/data"}))
				}),
				distinctVolumes(kafkas, "/var/lib/kafka/data"),
				namedVolume(arango, "/var/lib/arangodb3"),
				namedVolume(arango, "/var/lib/arangodb3-apps"),
			)
		}},
		{"arangodb gets the root password from the environment", func() error {
			return wantEnv(env(arango), map[string]string{"ARANGO_ROOT_PASSWORD": testArangoPassword})
		}},
		{"api depends on healthy kafka and arangodb", func() error {
			return dependsHealthy(api, "kafka1", "kafka2", "kafka3", "arangodb")
		}},
		{"worker depends on healthy kafka", func() error {
			return dependsHealthy(worker, "kafka1", "kafka2", "kafka3")
		}},
		{"api and worker build docker/Dockerfile from the repository root", func() error {
			var errs []error
			for _, s := range []types.ServiceConfig{api, worker} {
				switch {
				case s.Build == nil:
					errs = append(errs, fmt.Errorf("%s: no build section", s.Name))
				case filepath.Clean(s.Build.Context) != root:
					errs = append(errs, fmt.Errorf("%s: build context %q, want %q", s.Name, s.Build.Context, root))
				case filepath.ToSlash(s.Build.Dockerfile) != "docker/Dockerfile":
					errs = append(errs, fmt.Errorf("%s: dockerfile %q, want docker/Dockerfile", s.Name, s.Build.Dockerfile))
				}
			}
			if api.Image == "" || api.Image != worker.Image {
				errs = append(errs, fmt.Errorf("api image %q and worker image %q should be one non-empty tag", api.Image, worker.Image))
			}
			return errors.Join(errs...)
		}},
		{"api and worker run their subcommand", func() error {
			return errors.Join(
				wantSlice("api command", api.Command, "api"),
				wantSlice("worker command", worker.Command, "worker"),
			)
		}},
		{"api publishes container port 8080, and 4317 where its OTLP/gRPC receiver listens", func() error {
			published := map[uint32]bool{}
			for _, port := range api.Ports {
				if port.Published != "" {
					published[port.Target] = true
				}
			}
			if !published[8080] || !published[4317] {
				return fmt.Errorf("ports %+v: 8080 and 4317 are not both published", api.Ports)
			}
			if l := env(api)["INARIOUS_OTLP_GRPC_LISTEN"]; l != "0.0.0.0:4317" {
				return fmt.Errorf("INARIOUS_OTLP_GRPC_LISTEN = %q, want 0.0.0.0:4317", l)
			}
			return nil
		}},
		{"worker can be scaled: no published ports, no container_name", func() error {
			var errs []error
			if len(worker.Ports) > 0 {
				errs = append(errs, fmt.Errorf("worker publishes %+v", worker.Ports))
			}
			if worker.ContainerName != "" {
				errs = append(errs, fmt.Errorf("worker container_name %q", worker.ContainerName))
			}
			return errors.Join(errs...)
		}},
		{"worker storage is per replica (no named volume)", func() error {
			data := false
			for _, v := range worker.Volumes {
				if v.Type == types.VolumeTypeVolume && v.Source != "" {
					return fmt.Errorf("named volume %q on %s would be shared by every replica", v.Source, v.Target)
				}
				if v.Type == types.VolumeTypeBind {
					return fmt.Errorf("bind mount %q on %s would be shared by every replica", v.Source, v.Target)
				}
				data = data || v.Target == env(worker)["INARIOUS_DATA_DIR"]
			}
			for _, tmpfs := range worker.Tmpfs {
				data = data || strings.SplitN(tmpfs, ":", 2)[0] == env(worker)["INARIOUS_DATA_DIR"]
			}
			if !data {
				return fmt.Errorf("nothing mounted on INARIOUS_DATA_DIR %q", env(worker)["INARIOUS_DATA_DIR"])
			}
			return nil
		}},
		{"api keeps its data in a named volume on INARIOUS_DATA_DIR", func() error {
			return namedVolume(api, env(api)["INARIOUS_DATA_DIR"])
		}},
		{"api talks to all three brokers and arangodb, listens on 8080 beyond loopback", func() error {
			e := env(api)
			return errors.Join(
				wantEnv(e, map[string]string{
					"INARIOUS_STORE":           "arangodb",
					"INARIOUS_BROKERS":         bootstrap,
					"INARIOUS_ARANGO_URL":      "http://arangodb:8529",
					"INARIOUS_ARANGO_PASSWORD": testArangoPassword,
				}),
				nonLoopback8080(e["INARIOUS_LISTEN"]),
			)
		}},
		{"worker talks to all three brokers", func() error {
			return wantEnv(env(worker), map[string]string{"INARIOUS_BROKERS": bootstrap})
		}},
		{"the brokers advertise the addresses api and worker are given", func() error {
			var adv []string
			for _, k := range kafkas {
				adv = append(adv, strings.TrimPrefix(env(k)["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://"))
			}
			for _, s := range []types.ServiceConfig{api, worker} {
				if b := env(s)["INARIOUS_BROKERS"]; b != strings.Join(adv, ",") {
					return fmt.Errorf("%s uses %q, the brokers advertise %q", s.Name, b, adv)
				}
			}
			return nil
		}},
		{"api and worker agree on partitions and replication", func() error {
			a, w := env(api), env(worker)
			for _, k := range []string{"INARIOUS_PARTITIONS", "INARIOUS_REPLICATION", "INARIOUS_MIN_INSYNC_REPLICAS", "INARIOUS_KAFKA_VERSION"} {
				if a[k] != w[k] {
					return fmt.Errorf("%s: api %q, worker %q", k, a[k], w[k])
				}
			}
			return nil
		}},
		{"registry image pinned to apicurio/apicurio-registry 3.x.y", func() error {
			return matches(registry.Image, `^apicurio/apicurio-registry:3\.\d+\.\d+$`)
		}},
		{"kafka-ui image pinned to a kafbat/kafka-ui release", func() error {
			return matches(kafkaUI.Image, `^ghcr\.io/kafbat/kafka-ui:v\d+\.\d+\.\d+$`)
		}},
		{"registry healthcheck asks the Confluent-compatible API", func() error {
			// A bash script (no curl or wget assumed in the image), so the
			// URL is inside its text rather than an argument of its own.
			if err := healthcheck(registry, "bash"); err != nil {
				return err
			}
			script := strings.Join(registry.HealthCheck.Test, " ")
			for _, w := range []string{"/dev/tcp/127.0.0.1/8080", "GET /apis/ccompat/v7/subjects", "= 200"} {
				if !strings.Contains(script, w) {
					return fmt.Errorf("registry healthcheck %q lacks %q", script, w)
				}
			}
			return nil
		}},
		{"kafka-ui healthcheck hits /actuator/health", func() error {
			return healthcheck(kafkaUI, "wget", "http://127.0.0.1:8080/actuator/health")
		}},
		{"registry: BACKWARD rule, schemas kept in the compose Kafka", func() error {
			return wantEnv(env(registry), map[string]string{
				"APICURIO_RULES_GLOBAL_COMPATIBILITY": "BACKWARD",
				"APICURIO_STORAGE_KIND":               "kafkasql",
				"APICURIO_KAFKASQL_BOOTSTRAP_SERVERS": env(api)["INARIOUS_BROKERS"],
			})
		}},
		{"kafka-ui shows the compose Kafka through the registry's Confluent-compatible API", func() error {
			return wantEnv(env(kafkaUI), map[string]string{
				"KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS": env(api)["INARIOUS_BROKERS"],
				"KAFKA_CLUSTERS_0_SCHEMAREGISTRY":   "http://registry:8080/apis/ccompat/v7",
				"KAFKA_CLUSTERS_0_READONLY":         "true",
			})
		}},
		{"api and worker use the registry kafka-ui reads", func() error {
			want := env(kafkaUI)["KAFKA_CLUSTERS_0_SCHEMAREGISTRY"]
			return errors.Join(
				wantEnv(env(api), map[string]string{"INARIOUS_SCHEMA_REGISTRY": want}),
				wantEnv(env(worker), map[string]string{"INARIOUS_SCHEMA_REGISTRY": want}),
			)
		}},
		{"registry, kafka-ui, api and worker start in order", func() error {
			return errors.Join(
				dependsHealthy(registry, "kafka1", "kafka2", "kafka3"),
				dependsHealthy(kafkaUI, "kafka1", "kafka2", "kafka3", "registry"),
				dependsHealthy(api, "registry"),
				dependsHealthy(worker, "registry"),
			)
		}},
		{"registry and kafka-ui publish container port 8080 on the host's loopback only", func() error {
			var errs []error
			for _, s := range []types.ServiceConfig{registry, kafkaUI} {
				if len(s.Ports) != 1 || s.Ports[0].Target != 8080 || s.Ports[0].Published == "" || s.Ports[0].HostIP != "127.0.0.1" {
					errs = append(errs, fmt.Errorf("%s ports %+v, want one 127.0.0.1:<port>:8080", s.Name, s.Ports))
				}
			}
			return errors.Join(errs...)
		}},
		{"stop_grace_period outlasts INARIOUS_SHUTDOWN_TIMEOUT", func() error {
			var errs []error
			for _, s := range []types.ServiceConfig{api, worker} {
				cfg, err := app.Parse(s.Name, nil, lookup(env(s)))
				if err != nil {
					return err
				}
				if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= cfg.ShutdownTimeout {
					errs = append(errs, fmt.Errorf("%s: stop_grace_period %v, shutdown timeout %v", s.Name, s.StopGracePeriod, cfg.ShutdownTimeout))
				}
			}
			return errors.Join(errs...)
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// Every INARIOUS_* variable compose gives the binary must be one it reads
// (a typo would be silently ignored), and together they must pass its
// validation as the role's process would run them.
func TestComposeEnvAcceptedByBinary(t *testing.T) {
	p := project(t)
	accepted := acceptedEnv()
	for _, name := range []string{"api", "worker"} {
		s := p.Services[name]
		e := env(s)
		if len(e) == 0 {
			t.Errorf("%s: no environment", name)
		}
		for _, k := range slices.Sorted(maps.Keys(e)) {
			if !accepted[k] {
				t.Errorf("%s: environment variable %s is not read by the binary (known: %v)", name, k, slices.Sorted(maps.Keys(accepted)))
			}
		}
		if _, err := app.Parse("inarious "+name, nil, lookup(e)); err != nil {
			t.Errorf("%s: the binary rejects its environment: %v", name, err)
		}
	}
}

// The variables compose interpolates and the ones .env.example lists are
// the same set, and .env.example shows each plain default as compose has it.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllSubmatch(raw, -1) {
		used[string(m[1])] = true
	}
	listed := envExample(t)
	for k := range used {
		if _, ok := listed[k]; !ok {
			t.Errorf("%s uses ${%s}, %s does not list it", composeFile, k, envExampleFile)
		}
	}
	for k := range listed {
		if !used[k] {
			t.Errorf("%s lists %s, %s does not use it", envExampleFile, k, composeFile)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}$]*)\}`).FindAllSubmatch(raw, -1) {
		k, def := string(m[1]), string(m[2])
		if v, ok := listed[k]; ok && v != def {
			t.Errorf("%s: %s=%q, but the compose default is %q", envExampleFile, k, v, def)
		}
	}
}

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(dockerfileName)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out  []instruction
		cur  strings.Builder
		from int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			from = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), from})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stages splits the instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

// fromImage is the image of a FROM line, without --platform and AS.
func fromImage(in instruction) (image, alias string) {
	var words []string
	for _, w := range strings.Fields(in.args) {
		if !strings.HasPrefix(w, "--") {
			words = append(words, w)
		}
	}
	if len(words) == 3 && strings.EqualFold(words[1], "as") {
		return words[0], words[2]
	}
	if len(words) > 0 {
		return words[0], ""
	}
	return "", ""
}

// shellWords splits a shell command line the way sh would for the simple
// quoting a Dockerfile RUN line uses: whitespace, '...' and "..." (with \"
// inside), no expansion.
func shellWords(s string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// goBuild is the `go build` of a RUN line: the VAR=value words before it,
// its flags before -o, the output and the packages.
type goBuild struct {
	env      map[string]string
	flags    []string
	output   string
	packages []string
}

func parseGoBuild(run string) (*goBuild, error) {
	words, err := shellWords(run)
	if err != nil {
		return nil, err
	}
	i := slices.Index(words, "go")
	if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
		return nil, nil
	}
	b := &goBuild{env: map[string]string{}}
	for j := i - 1; j >= 0; j-- {
		k, v, ok := strings.Cut(words[j], "=")
		if !ok || strings.HasPrefix(k, "-") {
			break
		}
		b.env[k] = v
	}
	rest := words[i+2:]
	o := slices.Index(rest, "-o")
	if o < 0 || o+1 >= len(rest) {
		return nil, fmt.Errorf("go build without -o <output>: %q", run)
	}
	b.flags, b.output, b.packages = rest[:o], rest[o+1], rest[o+2:]
	return b, nil
}

// buildFlags reads docker/buildflags.txt: one argument a line.
func buildFlags(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(buildFlagsFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no flags", buildFlagsFile)
	}
	return out
}

// goDirective is the go line of the module's go.mod, e.g. "1.26".
func goMinor(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func dockerfileGoBuild(t *testing.T) *goBuild {
	t.Helper()
	var found []*goBuild
	for _, in := range parseDockerfile(t) {
		if in.cmd != "RUN" {
			continue
		}
		b, err := parseGoBuild(in.args)
		if err != nil {
			t.Fatalf("%s:%d: %v", dockerfileName, in.line, err)
		}
		if b != nil {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s has %d go build lines, want 1", dockerfileName, len(found))
	}
	return found[0]
}

func TestDockerfile(t *testing.T) {
	st := stages(parseDockerfile(t))
	if len(st) < 2 {
		t.Fatalf("%s has %d stages, want a builder and a final one", dockerfileName, len(st))
	}
	builder, final := st[0], st[len(st)-1]
	find := func(stage []instruction, cmd string) []instruction {
		var out []instruction
		for _, in := range stage {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}
	b := dockerfileGoBuild(t)

	checks := []struct {
		name  string
		check func() error
	}{
		{"builder is golang at go.mod's Go version", func() error {
			img, alias := fromImage(builder[0])
			if alias == "" {
				return fmt.Errorf("builder %q has no AS name", img)
			}
			return matches(img, `^golang:`+regexp.QuoteMeta(goMinor(t))+`(\.\d+)?(-[a-z0-9]+)?$`)
		}},
		{"final image is pinned", func() error {
			img, _ := fromImage(final[0])
			name, tag, ok := strings.Cut(img, ":")
			if !ok || tag == "" || tag == "latest" || name == "" {
				return fmt.Errorf("final image %q has no pinned tag", img)
			}
			return nil
		}},
		{"final stage runs as a non-root user", func() error {
			users := find(final, "USER")
			if len(users) == 0 {
				return errors.New("final stage has no USER, so it runs as root")
			}
			user, group, _ := strings.Cut(users[len(users)-1].args, ":")
			if user == "" || user == "root" || user == "0" || group == "0" || group == "root" {
				return fmt.Errorf("USER %s is root", users[len(users)-1].args)
			}
			return nil
		}},
		{"final stage owns /data for that user", func() error {
			users := find(final, "USER")
			if len(users) == 0 {
				return errors.New("no USER")
			}
			for _, run := range find(final, "RUN") {
				if regexp.MustCompile(`chown\s+` + regexp.QuoteMeta(users[len(users)-1].args) + `\s+/data\b`).MatchString(run.args) {
					return nil
				}
			}
			return fmt.Errorf("no RUN chown %s /data", users[len(users)-1].args)
		}},
		{"entrypoint is the binary, ports 8080 (HTTP) and 4317 (OTLP/gRPC) exposed", func() error {
			var errs []error
			if eps := find(final, "ENTRYPOINT"); len(eps) != 1 || eps[0].args != `["/inarious"]` {
				errs = append(errs, fmt.Errorf("ENTRYPOINT %+v, want one [\"/inarious\"]", eps))
			}
			if ex := find(final, "EXPOSE"); len(ex) != 1 || ex[0].args != "8080 4317" {
				errs = append(errs, fmt.Errorf("EXPOSE %+v, want 8080 4317", ex))
			}
			return errors.Join(errs...)
		}},
		{"final stage copies the builder's output", func() error {
			_, alias := fromImage(builder[0])
			want := fmt.Sprintf("--from=%s %s /inarious", alias, b.output)
			for _, c := range find(final, "COPY") {
				if c.args == want {
					return nil
				}
			}
			return fmt.Errorf("no COPY %s", want)
		}},
		{"go build is static and builds ./cmd/inarious", func() error {
			var errs []error
			if b.env["CGO_ENABLED"] != "0" {
				errs = append(errs, fmt.Errorf("CGO_ENABLED=%q, want 0", b.env["CGO_ENABLED"]))
			}
			if !slices.Equal(b.packages, []string{"./cmd/inarious"}) {
				errs = append(errs, fmt.Errorf("packages %q, want ./cmd/inarious", b.packages))
			}
			return errors.Join(errs...)
		}},
		{"go build flags equal buildflags.txt", func() error {
			if want := buildFlags(t); !slices.Equal(b.flags, want) {
				return fmt.Errorf("Dockerfile go build flags %q, %s has %q", b.flags, buildFlagsFile, want)
			}
			return nil
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestShellWords(t *testing.T) {
	got, err := shellWords(`CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -X 'a b' "q\"x" -o /out/x ./cmd/x`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-X", "a b", `q"x`, "-o", "/out/x", "./cmd/x"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := shellWords(`go build -ldflags="-s`); err == nil {
		t.Fatal("unterminated quote: no error")
	}
}

// Builds the binary the way the Dockerfile does (same flags, same package,
// CGO off) and runs it once, which is the part of the image build that can
// run without a docker engine.
func TestBuildWithDockerfileFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	b := dockerfileGoBuild(t)
	out := filepath.Join(t.TempDir(), "inarious")
	args := append(append([]string{"build"}, b.flags...), "-o", out)
	args = append(args, b.packages...)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	msg, err := exec.Command(out, "help").CombinedOutput()
	if err != nil || !strings.Contains(string(msg), "usage: inarious") {
		t.Fatalf("inarious help: %v\n%s", err, msg)
	}
}

func matches(s, pattern string) error {
	if !regexp.MustCompile(pattern).MatchString(s) {
		return fmt.Errorf("%q does not match %s", s, pattern)
	}
	return nil
}

func healthcheck(s types.ServiceConfig, want ...string) error {
	h := s.HealthCheck
	switch {
	case h == nil || h.Disable || len(h.Test) < 2:
		return fmt.Errorf("%s: no healthcheck", s.Name)
	case h.Interval == nil || h.Timeout == nil || h.Retries == nil || h.StartPeriod == nil:
		return fmt.Errorf("%s: healthcheck lacks interval, timeout, retries or start_period: %+v", s.Name, h)
	}
	for _, w := range want {
		if !slices.Contains(h.Test[1:], w) {
			return fmt.Errorf("%s: healthcheck %q lacks %q", s.Name, h.Test, w)
		}
	}
	return nil
}

func dependsHealthy(s types.ServiceConfig, on ...string) error {
	var errs []error
	for _, name := range on {
		d, ok := s.DependsOn[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s does not depend on %s", s.Name, name))
		} else if d.Condition != types.ServiceConditionHealthy {
			errs = append(errs, fmt.Errorf("%s depends on %s with condition %q, want %s", s.Name, name, d.Condition, types.ServiceConditionHealthy))
		}
	}
	return errors.Join(errs...)
}

// distinctVolumes fails when two services mount one volume on target: each
// broker needs a log dir of its own.
func distinctVolumes(ss []types.ServiceConfig, target string) error {
	seen := map[string]string{}
	for _, s := range ss {
		for _, v := range s.Volumes {
			if v.Target != target {
				continue
			}
			if other, ok := seen[v.Source]; ok {
				return fmt.Errorf("%s and %s share volume %q", other, s.Name, v.Source)
			}
			seen[v.Source] = s.Name
		}
	}
	return nil
}

func namedVolume(s types.ServiceConfig, target string) error {
	for _, v := range s.Volumes {
		if v.Target == target && v.Type == types.VolumeTypeVolume && v.Source != "" {
			return nil
		}
	}
	return fmt.Errorf("%s: no named volume on %q", s.Name, target)
}

func wantEnv(got, want map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := got[k]; !ok || v != want[k] {
			errs = append(errs, fmt.Errorf("%s=%q (set: %v), want %q", k, v, ok, want[k]))
		}
	}
	return errors.Join(errs...)
}

func wantSlice(what string, got []string, want ...string) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s = %q, want %q", what, got, want)
	}
	return nil
}

// nonLoopback8080 accepts a listen address other containers can reach on
// port 8080, the one the compose file publishes and health-checks.
func nonLoopback8080(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("INARIOUS_LISTEN %q: %w", addr, err)
	}
	if port != "8080" {
		return fmt.Errorf("INARIOUS_LISTEN %q: port %s, want 8080", addr, port)
	}
	if host == "localhost" {
		return fmt.Errorf("INARIOUS_LISTEN %q is loopback only", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return fmt.Errorf("INARIOUS_LISTEN %q is loopback only", addr)
	}
	return nil
}

func lookup(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// Runs the registry's healthcheck script (bash, as in the container) against
// the real Apicurio Registry that INARIOUS_SCHEMA_REGISTRY points at, on its
// port instead of the container's 8080.
func TestRegistryHealthcheckAgainstRealRegistry(t *testing.T) {
	raw := os.Getenv("INARIOUS_SCHEMA_REGISTRY")
	if raw == "" {
		t.Skip("INARIOUS_SCHEMA_REGISTRY not set (scripts/registry.sh start)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		t.Skipf("INARIOUS_SCHEMA_REGISTRY=%s is not a registry on this machine's loopback", raw)
	}
	test := project(t).Services["registry"].HealthCheck.Test
	if len(test) != 4 || test[0] != "CMD" || test[1] != "bash" || test[2] != "-c" {
		t.Fatalf("healthcheck %q is not [CMD bash -c <script>]", test)
	}
	script := strings.Replace(test[3], "/dev/tcp/127.0.0.1/8080", "/dev/tcp/127.0.0.1/"+u.Port(), 1)
	if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("healthcheck against %s: %v\n%s", raw, err, out)
	}
	bad := strings.Replace(script, "/apis/ccompat/v7/subjects", "/no/such/path", 1)
	if err := exec.Command("bash", "-c", bad).Run(); err == nil {
		t.Fatal("healthcheck passes on a path that answers 404")
	}
}
