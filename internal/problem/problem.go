// Package problem writes HTTP errors as RFC 9457 problem details
// (application/problem+json), so every error the API returns has one shape.
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem document.
type Details struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists field-level validation failures, when there are any.
	Errors map[string]string `json:"errors,omitempty"`
}

// Write sends a problem document with the given status; detail is shown to
// the client, so it must never carry internal error text such as stack traces.
func Write(w http.ResponseWriter, r *http.Request, status int, detail string) {
	WriteDetails(w, r, Details{Status: status, Detail: detail})
}

// WriteDetails sends d, filling in the title and instance when they are empty.
func WriteDetails(w http.ResponseWriter, r *http.Request, d Details) {
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	if d.Instance == "" && r != nil {
		d.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}
