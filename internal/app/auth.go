package app

import (
	"log/slog"

	"github.com/inarious/inarious/internal/auth"
)

// loadAPIKeys reads the configured API keys; none leaves the API open.
func loadAPIKeys(cfg Config, log *slog.Logger) (*auth.Keys, error) {
	keys, err := auth.Load(cfg.APIKeysFile, cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	if keys.Len() == 0 {
		log.Info("api keys off: the API is open")
	} else {
		log.Info("api keys on", "keys", keys.Len(), "clients", keys.Clients())
	}
	return keys, nil
}
