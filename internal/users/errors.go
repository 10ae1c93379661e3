package users

import (
	"errors"
	"sort"
	"strings"
)

// Domain errors. Stores may wrap them; match with errors.Is.
var (
	ErrNotFound       = errors.New("users: not found")
	ErrDuplicateEmail = errors.New("users: email already in use")
	// ErrStaleRevision means the If-Match revision is not the current one
	// (HTTP 412 Precondition Failed).
	ErrStaleRevision = errors.New("users: stale revision (precondition failed)")
)

// ErrPreconditionFailed is an alias of ErrStaleRevision for HTTP-minded callers.
var ErrPreconditionFailed = ErrStaleRevision

// ValidationError reports invalid input, one message per field name (JSON name).
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "users: invalid input: " + strings.Join(parts, "; ")
}

// add records msg for field and returns e, allocating lazily.
func (e *ValidationError) add(field, msg string) *ValidationError {
	if e == nil {
		e = &ValidationError{Fields: map[string]string{}}
	}
	e.Fields[field] = msg
	return e
}

// orNil avoids the typed-nil-in-interface trap when there were no failures.
func (e *ValidationError) orNil() error {
	if e == nil {
		return nil
	}
	return e
}
