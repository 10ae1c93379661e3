package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/arangostore"
	"github.com/inarious/inarious/internal/users/boltstore"
)

// openStore opens the users store the configuration names.
func openStore(ctx context.Context, cfg Config) (users.Store, error) {
	switch cfg.Store {
	case "arangodb":
		return arangostore.Open(ctx, arangostore.Config{
			URL: cfg.ArangoURL, Database: cfg.ArangoDatabase, User: cfg.ArangoUser, Password: cfg.ArangoPassword,
		})
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("users store: %w", err)
		}
		return boltstore.Open(filepath.Join(cfg.DataDir, "users.db"))
	}
}
