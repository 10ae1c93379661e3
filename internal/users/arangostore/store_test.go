package arangostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/storetest"
)

// TestContract needs a real server; each subtest gets its own database,
// dropped afterwards, so runs never see each other's data.
func TestContract(t *testing.T) {
	url := os.Getenv("INARIOUS_ARANGO_URL")
	if url == "" {
		t.Skip("ArangoDB contract suite skipped: INARIOUS_ARANGO_URL not set")
	}
	prefix := os.Getenv("INARIOUS_ARANGO_DATABASE")
	if prefix == "" {
		prefix = "inarious_test"
	}
	storetest.Run(t, func(t *testing.T) users.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg := Config{
			URL:      url,
			Database: prefix + "_" + hex.EncodeToString(b[:]),
			User:     os.Getenv("INARIOUS_ARANGO_USER"),
			Password: os.Getenv("INARIOUS_ARANGO_PASSWORD"),
		}
		s, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.db.Remove(context.Background()); err != nil {
				t.Errorf("drop database %s: %v", cfg.Database, err)
			}
		})
		return s
	})
}
