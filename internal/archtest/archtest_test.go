package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkg is what go list says of one package of the module.
type pkg struct {
	ImportPath string
	// Deps are every package it imports, directly or not; tests' imports
	// are not among them.
	Deps []string
}

// module lists the module's packages with go list, keyed by their path
// inside the module ("internal/app"), and returns the module's directory.
func module(t *testing.T) (map[string]pkg, string) {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	modPath, err := goList(root, "-m", "-f", "{{.Path}}")
	if err != nil {
		t.Fatal(err)
	}
	modPath = strings.TrimSpace(modPath)
	out, err := goList(root, "-json=ImportPath,Deps", "./...")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]pkg{}
	for dec := json.NewDecoder(strings.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		rel, ok := strings.CutPrefix(p.ImportPath, modPath+"/")
		if !ok {
			t.Fatalf("package %s is outside module %s", p.ImportPath, modPath)
		}
		var deps []string
		for _, d := range p.Deps {
			if r, ok := strings.CutPrefix(d, modPath+"/"); ok {
				deps = append(deps, r)
			}
		}
		p.Deps = deps
		pkgs[rel] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs, root
}

func goList(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", errors.New("go list " + strings.Join(args, " ") + ": " + err.Error() + ": " + stderr.String())
	}
	return string(out), nil
}

// under reports whether path is pattern or, for "x/...", x or below it.
func under(path, pattern string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchesAny(path string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return under(path, p) })
}

// TestImports keeps components apart: only the composition root wires them
// together, and the HTTP API reads the usage table without the processors.
func TestImports(t *testing.T) {
	pkgs, _ := module(t)
	rules := []struct {
		from, exceptFrom []string
		// mustNotImport holds for every package in from but exceptFrom.
		mustNotImport []string
		why           string
	}{
		{
			from:          []string{"processors/...", "views/...", "codecs/...", "api/...", "middleware/...", "internal/..."},
			exceptFrom:    []string{"internal/app/..."},
			mustNotImport: []string{"internal/app"},
			why:           "internal/app is the composition root: it imports the components, never the other way round",
		},
		{
			from:          []string{"api/..."},
			mustNotImport: []string{"processors/..."},
			why:           "the API reads the usage table through a view; processing belongs to workers",
		},
		{
			from: []string{"internal/stream"},
			// codecs/... is not listed: stream reaches it through
			// internal/metrics (Component.Counters), which names
			// httpx.UnmatchedRoute.
			mustNotImport: []string{"internal/windows", "internal/top", "processors/...", "views/..."},
			why:           "internal/stream runs any processor group: a group hands it what is particular to it (partition keys, storage layers, producer users) through its Group",
		},
		{
			from:          []string{"processors/..."},
			mustNotImport: []string{"views/..."},
			why:           "a processor group writes its table; views read it, and may import the group's names, not the other way round",
		},
		{
			from:          []string{"api/..."},
			mustNotImport: []string{"views/...", "internal/usagehttp", "internal/endpointshttp", "internal/dashboard", "internal/routing"},
			why:           "the API server knows no table: each served table hands it routes and readiness as values (internal/app lists them)",
		},
		{
			from: []string{"middleware/..."},
			// internal/windows is allowed: quotas are limits per window, and
			// the middleware enforces them with the API's own code.
			mustNotImport: []string{"api/...", "processors/...", "views/...", "internal/otlpin", "internal/metrics", "internal/users/..."},
			why:           "the middleware is a library other services import: it sends events and enforces quotas, and needs none of the server",
		},
		{
			from:          []string{"internal/metrics", "internal/dashboard", "internal/users/userhttp", "internal/usagehttp", "internal/endpointshttp", "internal/otlpin", "internal/alertshttp"},
			mustNotImport: []string{"api", "internal/users/userhttp", "internal/usagehttp", "internal/endpointshttp", "internal/dashboard", "internal/otlpin", "internal/alertshttp"},
			why:           "components hand the API their routes (httpx.Route) and middleware as values, and depend on neither the API nor each other",
		},
	}
	for _, rule := range rules {
		checked := 0
		for path, p := range pkgs {
			if !matchesAny(path, rule.from) || matchesAny(path, rule.exceptFrom) {
				continue
			}
			checked++
			for _, d := range p.Deps {
				if matchesAny(d, rule.mustNotImport) && d != path {
					t.Errorf("%s imports %s (perhaps indirectly): %s", path, d, rule.why)
				}
			}
		}
		if checked == 0 {
			t.Errorf("rule %v matches no package; update it", rule.from)
		}
	}
}

// TestReadmeLayoutListsEveryPackage keeps the README's "Layout" table the
// list of the module's packages: every package has a row, every row a package.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	pkgs, root := module(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := layoutRows(t, readme)
	for _, r := range rows {
		if _, ok := pkgs[r]; !ok {
			t.Errorf("README's Layout lists %s, which is not a package of the module (go list ./...)", r)
		}
	}
	for path := range pkgs {
		if !slices.Contains(rows, path) {
			t.Errorf("package %s has no row in README's Layout table", path)
		}
	}
}

// layoutRows returns the first cell of each row of the table under the
// "## Layout" heading, e.g. "internal/app" for | `internal/app` | … |.
func layoutRows(t *testing.T, readme []byte) []string {
	t.Helper()
	var rows []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Layout"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
		if slices.Contains(rows, cell) {
			t.Errorf("README's Layout lists %s twice", cell)
		}
		rows = append(rows, cell)
	}
	if len(rows) == 0 {
		t.Fatal("README.md has no table under ## Layout")
	}
	return rows
}
