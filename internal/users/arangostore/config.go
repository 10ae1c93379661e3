package arangostore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Config locates the database. User may be empty for servers without auth.
type Config struct {
	URL      string // e.g. http://localhost:8529
	Database string
	User     string
	Password string
}

// Validate reports configuration mistakes before any network call.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("URL is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("URL scheme must be http or https, got %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("URL has no host"))
	}
	switch {
	case c.Database == "":
		errs = append(errs, errors.New("database is required"))
	case strings.ContainsAny(c.Database, "/:") || strings.TrimSpace(c.Database) != c.Database:
		errs = append(errs, fmt.Errorf("database name %q is not allowed", c.Database))
	}
	if c.User == "" && c.Password != "" {
		errs = append(errs, errors.New("password given without user"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("arangostore: invalid config: %w", err)
	}
	return nil
}
