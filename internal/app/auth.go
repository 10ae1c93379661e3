package app

import (
	"log/slog"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/auth"
)

// useAPIKeys turns on API-key authentication when keys are configured. It
// goes innermost of the router's middleware: inside the activity middleware,
// which then counts authenticated requests under the key's client name, and
// inside any metrics middleware, which then sees 401s and 403s.
func useAPIKeys(s *api.Server, cfg Config, log *slog.Logger) error {
	keys, err := auth.Load(cfg.APIKeysFile, cfg.APIKeys)
	if err != nil {
		return err
	}
	if keys.Len() == 0 {
		log.Info("api keys off: the API is open")
		return nil
	}
	s.Router().Use(auth.Middleware(keys, api.SetClient))
	log.Info("api keys on", "keys", keys.Len(), "clients", keys.Clients())
	return nil
}
