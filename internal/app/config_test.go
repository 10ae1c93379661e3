package app_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/app"
)

// configTable returns the rows of the README's configuration table.
func configTable(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ := strings.Cut(rest, "\n## ")
	var rows []string
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "| `--") {
			rows = append(rows, l)
		}
	}
	if len(rows) == 0 {
		t.Fatal("README's Configuration section has no flag rows")
	}
	return rows
}

func row(rows []string, flagName string) string {
	for _, r := range rows {
		if strings.Contains(r, "`--"+flagName+"`") {
			return r
		}
	}
	return ""
}

func TestEveryFlagIsInTheREADME(t *testing.T) {
	rows := configTable(t)
	cfg := app.Defaults()
	app.FlagSet("inarious", &cfg).VisitAll(func(f *flag.Flag) {
		if row(rows, f.Name) == "" {
			t.Errorf("--%s (%s) is missing from the README's configuration table", f.Name, app.EnvName(f.Name))
		}
	})
	r := row(rows, "client-id")
	for _, want := range []string{"`INARIOUS_CLIENT_ID`", "`inarious`"} {
		if r != "" && !strings.Contains(r, want) {
			t.Errorf("README row of --client-id lacks %s: %s", want, r)
		}
	}
}

// --debug-pages also mounts Go's profiler; operators deciding whether to
// turn it on must be told.
func TestDebugPagesHelpMentionsPprof(t *testing.T) {
	cfg := app.Defaults()
	if u := app.FlagSet("inarious", &cfg).Lookup("debug-pages").Usage; !strings.Contains(u, "/debug/pprof/") {
		t.Errorf("--debug-pages help %q does not mention /debug/pprof/", u)
	}
	if r := row(configTable(t), "debug-pages"); !strings.Contains(r, "/debug/pprof/") {
		t.Errorf("README row of --debug-pages does not mention /debug/pprof/: %s", r)
	}
}

func TestGCPercentMustNotBeNegative(t *testing.T) {
	cfg := app.Defaults()
	cfg.GCPercent = -1
	if cfg.Validate() == nil {
		t.Error("--gc-percent -1 accepted")
	}
}

// min.insync.replicas above the replication factor would make every acks=all
// write fail; 0 leaves the broker's default.
func TestMinInsyncReplicasWithinReplication(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"--replication=3", "--min-insync-replicas=2"}, true},
		{[]string{"--replication=3", "--min-insync-replicas=3"}, true},
		{[]string{"--replication=1", "--min-insync-replicas=1"}, true},
		{[]string{"--replication=2", "--min-insync-replicas=3"}, false},
		{[]string{"--min-insync-replicas=2"}, false},
		{[]string{"--replication=3", "--min-insync-replicas=-1"}, false},
	} {
		cfg, err := app.Parse("inarious", tc.args, func(string) string { return "" })
		if (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want ok=%v", tc.args, err, tc.ok)
		}
		if err == nil && tc.args != nil && cfg.Kafka.MinInsyncReplicas == 0 {
			t.Errorf("%v: MinInsyncReplicas not set", tc.args)
		}
	}
}
