// Package quotastest holds quota policies in memory, for tests of what
// reads and writes them.
package quotastest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inarious/inarious/internal/quotas"
)

// Store is a policy table in memory (quotas.Table's reads and writes).
type Store struct {
	mu sync.Mutex
	m  map[string]*quotas.Policy
}

// NewStore holds policies, keyed by their client.
func NewStore(policies ...*quotas.Policy) *Store {
	s := &Store{m: map[string]*quotas.Policy{}}
	for _, p := range policies {
		s.m[p.Client] = p
	}
	return s
}

// Get is client's policy, nil if none.
func (s *Store) Get(client string) (*quotas.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[client], nil
}

// List is every policy, by client.
func (s *Store) List() ([]*quotas.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*quotas.Policy, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *quotas.Policy) int { return strings.Compare(a.Client, b.Client) })
	return out, nil
}

// Put stores p, stamped with the time.
func (s *Store) Put(_ context.Context, p *quotas.Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Updated = time.Now().UTC()
	s.m[p.Client] = p
	return nil
}

// Delete removes client's policy.
func (s *Store) Delete(_ context.Context, client string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, client)
	return nil
}
