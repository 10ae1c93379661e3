// Package users holds the Users domain: the User type, input validation,
// domain errors and the Store contract that every backend implements.
package users

import (
	"context"
	"strings"
	"time"
)

// User is a stored user. Rev changes on every write and is the value of the
// HTTP ETag, so clients can do optimistic concurrency with If-Match.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Rev       string    `json:"rev"`
}

// NewUser is the full input of Create and Replace.
type NewUser struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// UserPatch changes only the fields that are non-nil.
type UserPatch struct {
	Name  *string `json:"name,omitempty"`
	Email *string `json:"email,omitempty"`
}

// Apply returns u with the patch's fields set; it does not validate.
func (p UserPatch) Apply(u User) User {
	if p.Name != nil {
		u.Name = *p.Name
	}
	if p.Email != nil {
		u.Email = *p.Email
	}
	return u
}

// Page sizes used when ListOptions.Limit is out of range.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ListOptions selects one page. Cursor is the NextCursor of the previous
// page, or empty for the first page.
type ListOptions struct {
	Limit  int
	Cursor string
}

// EffectiveLimit maps a non-positive limit to DefaultLimit and caps it at MaxLimit.
func (o ListOptions) EffectiveLimit() int {
	switch {
	case o.Limit <= 0:
		return DefaultLimit
	case o.Limit > MaxLimit:
		return MaxLimit
	}
	return o.Limit
}

// Page is one slice of users ordered by ID; NextCursor is empty on the last page.
type Page struct {
	Users      []User `json:"users"`
	NextCursor string `json:"next_cursor"`
}

// Store persists users. Implementations must return the package's error
// values (wrapped or not) so callers can use errors.Is / errors.As.
//
// ifMatchRev: empty means unconditional; otherwise it must equal the
// current Rev or the call fails with ErrStaleRevision.
type Store interface {
	Create(ctx context.Context, in NewUser) (User, error)
	Get(ctx context.Context, id string) (User, error)
	List(ctx context.Context, opts ListOptions) (Page, error)
	Replace(ctx context.Context, id string, in NewUser, ifMatchRev string) (User, error)
	Patch(ctx context.Context, id string, p UserPatch, ifMatchRev string) (User, error)
	Delete(ctx context.Context, id string, ifMatchRev string) error
	Close() error
}

// EmailKey is the normalised form used for the uniqueness check, so
// "Ann@Example.com" and "ann@example.com" cannot both exist.
func EmailKey(email string) string {
	return strings.ToLower(email)
}

// Now is the timestamp stores stamp on writes: UTC, millisecond precision,
// so values survive a JSON round trip unchanged in every backend.
func Now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}
