package userhttp

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
)

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	var in users.NewUser
	if !h.decode(w, r, &in, mediaJSON) {
		return
	}
	u, err := h.store.Create(r.Context(), in)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	// The collection's own path, so a router mounting it under a prefix gets it too.
	w.Header().Set("Location", strings.TrimSuffix(r.URL.EscapedPath(), "/")+"/"+url.PathEscape(u.ID))
	writeUser(w, http.StatusCreated, u)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	u, err := h.store.Get(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeUser(w, http.StatusOK, u)
}

type listResponse struct {
	Users []users.User `json:"users"`
	// NextCursor is "" on the last page; kept (not omitted) for a stable shape.
	NextCursor string `json:"next_cursor"`
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := users.ListOptions{Limit: users.DefaultLimit, Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > users.MaxLimit {
			problem.Write(w, r, http.StatusBadRequest, "limit must be an integer from 1 to 500")
			return
		}
		opts.Limit = n
	}
	// Cursors are IDs; rejecting others keeps garbage out of store queries.
	if opts.Cursor != "" && !users.ValidID(opts.Cursor) {
		problem.Write(w, r, http.StatusBadRequest, "cursor is not valid; use next_cursor from a previous page")
		return
	}
	page, err := h.store.List(r.Context(), opts)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	if page.Users == nil {
		page.Users = []users.User{} // [] rather than null
	}
	httpx.WriteJSON(w, http.StatusOK, listResponse{Users: page.Users, NextCursor: page.NextCursor})
}

func (h *handler) replace(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rev, ok := ifMatch(w, r)
	if !ok {
		return
	}
	var in users.NewUser
	if !h.decode(w, r, &in, mediaJSON) {
		return
	}
	u, err := h.store.Replace(r.Context(), id, in, rev)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeUser(w, http.StatusOK, u)
}

func (h *handler) patch(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rev, ok := ifMatch(w, r)
	if !ok {
		return
	}
	var in patchBody
	if !h.decode(w, r, &in, mediaMergePatch, mediaJSON) {
		return
	}
	p, fieldErrs := in.toPatch()
	if fieldErrs != nil {
		writeValidation(w, r, fieldErrs)
		return
	}
	u, err := h.store.Patch(r.Context(), id, p, rev)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeUser(w, http.StatusOK, u)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rev, ok := ifMatch(w, r)
	if !ok {
		return
	}
	if err := h.store.Delete(r.Context(), id, rev); err != nil {
		h.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pathID answers 404 for IDs that cannot exist, without a store round trip;
// stores give the same answer, so the result is consistent either way.
func pathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := mux.Vars(r)["id"]
	if !users.ValidID(id) {
		problem.Write(w, r, http.StatusNotFound, "user not found")
		return "", false
	}
	return id, true
}
