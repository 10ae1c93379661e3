package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"github.com/gorilla/mux"
)

// bareRouter serves /healthz as Inarious does (same bytes, encoded once, the
// header set the same way) from a gorilla/mux router with nothing else: the
// floor the API's per-request cost is measured against (scripts/api-cost.sh),
// so the ratio counts the API's middlewares and events, not a cheaper handler.
func bareRouter(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare-router", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:18180", "HTTP listen address")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	body, err := json.Marshal(struct {
		Status string `json:"status"`
	}{"ok"})
	if err != nil {
		return err
	}
	body = append(body, '\n')
	r := mux.NewRouter()
	r.Path("/healthz").Methods(http.MethodGet, http.MethodHead).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("bare-router: listening on %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
