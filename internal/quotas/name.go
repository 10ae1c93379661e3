package quotas

import (
	"fmt"
	"strings"

	"github.com/inarious/inarious/internal/windows"
)

// ParseLimitName reads a limit's name as Name writes it, and as the
// RateLimit-Policy header shows it: its window, then its service and its
// endpoint when it has them ("1m", "1d shop", "1h GET /users/{id}",
// "1d shop GET /users/{id}"). The Limit it returns has no count (Limit 0);
// whether its window is kept is CheckWindow's to say.
func ParseLimitName(name string) (Limit, error) {
	window, rest, _ := strings.Cut(name, " ")
	if _, err := windows.ParseDuration(window); err != nil {
		return Limit{}, fmt.Errorf(`%q does not start with a window ("1m", "1h", "1d")`, name)
	}
	l := Limit{Window: window}
	switch {
	case rest == "":
	case endpointSyntax.MatchString(rest):
		l.Endpoint = rest
	default:
		l.Service, l.Endpoint, _ = strings.Cut(rest, " ")
		if !ValidService(l.Service) {
			return Limit{}, fmt.Errorf(`after the window, a service (1 to %d letters, digits or . _ -) or an endpoint ("GET /users/{id}")`, maxServiceLen)
		}
	}
	if l.Endpoint != "" && !ValidEndpoint(l.Endpoint) {
		return Limit{}, fmt.Errorf(`%q is not an endpoint: a method, a space and a route, e.g. "GET /users/{id}"`, l.Endpoint)
	}
	return l, nil
}

// Scope says which calls l counts, whatever its count: its window (as a
// duration, so "60s" and "1m" agree), service and endpoint.
func (l Limit) Scope() string {
	return windows.FormatDuration(l.Step()) + "\x00" + l.Service + "\x00" + l.Endpoint
}
