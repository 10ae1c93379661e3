// Package alertshttp is the alerts' HTTP resource: the rules
// (PUT/GET/DELETE /alerts/rules/{name}, GET /alerts/rules) and the alerts
// active now (GET /alerts), all with the admin scope. See the README,
// "Alerts".
package alertshttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/windows"
)

// RuleStore writes rules (alerts.Writer).
type RuleStore interface {
	Put(alerts.Rule) error
	Delete(name string) error
}

// Deps are what the routes read and write.
type Deps struct {
	Rules  *alerts.Rules // this process' view of the rules
	Writer RuleStore
	Active interface{ List() []*alerts.Alert }
	// Windows are the kept steps a rule's window must be one of.
	Windows windows.Config
	Log     *slog.Logger
	// MaxBodyBytes caps a rule's body (default 64 KiB).
	MaxBodyBytes int64
	// Now is the clock of UpdatedAt (default time.Now).
	Now func() time.Time
}

// visibleWithin is how long a change waits to show in this process' view
// before it is answered anyway (it is in Kafka then).
const visibleWithin = 5 * time.Second

type handler struct{ Deps }

// Routes are the alerts' routes.
func Routes(d Deps) []httpx.Route {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 64 << 10
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handler{d}
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/alerts", Scope: auth.Admin, Handler: http.HandlerFunc(h.active)},
		{Method: http.MethodGet, Path: "/alerts/rules", Scope: auth.Admin, Handler: http.HandlerFunc(h.list)},
		{Method: http.MethodGet, Path: "/alerts/rules/{name}", Scope: auth.Admin, Handler: http.HandlerFunc(h.get)},
		{Method: http.MethodPut, Path: "/alerts/rules/{name}", Scope: auth.Admin, Handler: http.HandlerFunc(h.put)},
		{Method: http.MethodDelete, Path: "/alerts/rules/{name}", Scope: auth.Admin, Handler: http.HandlerFunc(h.delete)},
	}
}

func (h *handler) active(w http.ResponseWriter, _ *http.Request) {
	list := h.Active.List()
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"alerts": list, "count": len(list)})
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	rules := h.Rules.Current().List()
	out := make([]alerts.PublicRule, len(rules))
	for i, r := range rules {
		out[i] = r.Public()
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"rules": out, "count": len(out)})
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	c, ok := h.Rules.Current().Rule(name)
	if !ok {
		problem.Write(w, r, http.StatusNotFound, "no alert rule named "+name)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, c.Public())
}

func (h *handler) put(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		problem.Write(w, r, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "a rule is at most "+formatBytes(h.MaxBodyBytes))
		return
	case err != nil:
		problem.Write(w, r, http.StatusBadRequest, "the body could not be read")
		return
	}
	rule, err := alerts.ParseRule(name, body)
	if err == nil {
		err = rule.Validate(h.Windows)
	}
	if fe := (*alerts.FieldErrors)(nil); errors.As(err, &fe) {
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: detailOf(fe), Errors: fe.Fields})
		return
	}
	rule.UpdatedAt = h.Now().UTC().Truncate(time.Millisecond)
	_, existed := h.Rules.Current().Rule(name)
	if err := h.Writer.Put(rule); err != nil {
		h.Log.Warn("alert rule not written", "rule", name, "err", err)
		problem.Write(w, r, http.StatusServiceUnavailable, "the rule could not be written to Kafka; try again")
		return
	}
	h.waitVisible(r.Context(), func(s *alerts.Snapshot) bool {
		c, ok := s.Rule(name)
		return ok && c.UpdatedAt.Equal(rule.UpdatedAt)
	})
	status := http.StatusOK
	if !existed {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, rule.Public())
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if _, ok := h.Rules.Current().Rule(name); !ok {
		problem.Write(w, r, http.StatusNotFound, "no alert rule named "+name)
		return
	}
	if err := h.Writer.Delete(name); err != nil {
		h.Log.Warn("alert rule not deleted", "rule", name, "err", err)
		problem.Write(w, r, http.StatusServiceUnavailable, "the deletion could not be written to Kafka; try again")
		return
	}
	h.waitVisible(r.Context(), func(s *alerts.Snapshot) bool { _, ok := s.Rule(name); return !ok })
	w.WriteHeader(http.StatusNoContent)
}

// waitVisible waits until this process' view shows a change, so a GET
// after the answer sees it; past visibleWithin the change is answered anyway.
func (h *handler) waitVisible(ctx context.Context, ok func(*alerts.Snapshot) bool) {
	wctx, cancel := context.WithTimeout(ctx, visibleWithin)
	defer cancel()
	if err := h.Rules.WaitFor(wctx, ok); err != nil {
		h.Log.Warn("alert rule change not yet in this process' view", "err", err)
	}
}

func detailOf(fe *alerts.FieldErrors) string {
	if fe.Body != "" {
		return fe.Body
	}
	return "one or more fields are invalid"
}

func formatBytes(n int64) string {
	if n%1024 == 0 {
		return strconv.FormatInt(n/1024, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
