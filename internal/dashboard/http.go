package dashboard

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
)

// assets are the page and its vendored chart library (see assets/vendor/README.md).
//
//go:embed assets
var assets embed.FS

const (
	keepAliveEvery = 15 * time.Second
	// writeTimeout bounds one event's write: a client that stops reading is
	// dropped instead of pinning the stream.
	writeTimeout = 10 * time.Second
)

// Routes are the page, its static files, its event stream and, with
// WithEndpoints, the latency chart of a picked endpoint. All need admin when
// keys are on: the page shows every client's usage.
func (h *Hub) Routes() []httpx.Route {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	routes := []httpx.Route{
		{Method: http.MethodGet, Path: "/dashboard", Scope: auth.Admin, Handler: page},
		{Method: http.MethodGet, Path: "/dashboard/assets/", Prefix: true, Scope: auth.Admin,
			Handler: http.StripPrefix("/dashboard/assets/", http.FileServerFS(static))},
		{Method: http.MethodGet, Path: "/dashboard/events", Scope: auth.Admin, Handler: http.HandlerFunc(h.ServeEvents)},
	}
	if h.eps != nil {
		routes = append(routes, httpx.Route{Method: http.MethodGet, Path: "/dashboard/endpoints/series", Scope: auth.Admin,
			Handler: http.HandlerFunc(h.serveChart)})
	}
	return routes
}

// ServeEvents streams snapshots as server-sent events until the client goes
// away or the hub closes.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's read and write timeouts are meant for ordinary requests;
	// the read deadline would cancel the request's context mid-stream.
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // let proxies such as nginx pass events through at once
	if r.Method == http.MethodHead {
		// A HEAD stream would send nothing, forever.
		w.WriteHeader(http.StatusOK)
		return
	}
	ch, cancel := h.Subscribe()
	defer cancel()
	w.WriteHeader(http.StatusOK)

	send := func(parts ...[]byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 2000\n\n")) {
		return
	}
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-ch:
			if !ok || !send([]byte("data: "), msg, []byte("\n\n")) {
				return
			}
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}
