// Package arangostore is a users.Store on ArangoDB (go-driver v2). Uniqueness
// is enforced by a unique persistent index on the normalised email, and
// revisions are ArangoDB's own _rev checked server-side via If-Match, so
// both hold under concurrency without client-side locking.
package arangostore

import (
	"context"
	"fmt"
	"time"

	"github.com/arangodb/go-driver/v2/arangodb"
	"github.com/arangodb/go-driver/v2/arangodb/shared"
	"github.com/arangodb/go-driver/v2/connection"

	"github.com/inarious/inarious/internal/users"
)

// CollectionName is the collection holding user documents.
const CollectionName = "Users"

const emailIndexName = "users_email_key_unique"

// doc is the stored shape; email_key carries the unique index so the
// address keeps the case the user typed.
type doc struct {
	Key       string    `json:"_key,omitempty"`
	Rev       string    `json:"_rev,omitempty"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	EmailKey  string    `json:"email_key"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (d doc) user() users.User {
	return users.User{ID: d.Key, Name: d.Name, Email: d.Email, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Rev: d.Rev}
}

// docPatch is the partial update body; nil fields are left alone.
type docPatch struct {
	Name      *string   `json:"name,omitempty"`
	Email     *string   `json:"email,omitempty"`
	EmailKey  *string   `json:"email_key,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Store is a users.Store backed by one ArangoDB collection.
type Store struct {
	db   arangodb.Database
	coll arangodb.Collection
}

var _ users.Store = (*Store)(nil)

// Open connects and ensures the database, the collection and the unique email index exist.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn := connection.NewHttpConnection(connection.DefaultHTTPConfigurationWrapper(
		connection.NewRoundRobinEndpoints([]string{cfg.URL}), false))
	if cfg.User != "" {
		if err := conn.SetAuthentication(connection.NewBasicAuth(cfg.User, cfg.Password)); err != nil {
			return nil, fmt.Errorf("arangostore: auth: %w", err)
		}
	}
	client := arangodb.NewClient(conn)
	db, err := ensureDatabase(ctx, client, cfg.Database)
	if err != nil {
		return nil, err
	}
	coll, err := ensureCollection(ctx, db, CollectionName)
	if err != nil {
		return nil, err
	}
	unique := true
	_, _, err = coll.EnsurePersistentIndex(ctx, []string{"email_key"}, &arangodb.CreatePersistentIndexOptions{
		Name: emailIndexName, Unique: &unique,
	})
	if err != nil {
		return nil, fmt.Errorf("arangostore: ensure email index: %w", err)
	}
	return &Store{db: db, coll: coll}, nil
}

// ensureDatabase tolerates a concurrent creator (duplicate name) racing us.
func ensureDatabase(ctx context.Context, c arangodb.Client, name string) (arangodb.Database, error) {
	ok, err := c.DatabaseExists(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("arangostore: database exists: %w", err)
	}
	if !ok {
		db, err := c.CreateDatabase(ctx, name, nil)
		if err == nil {
			return db, nil
		}
		if !shared.IsArangoErrorWithErrorNum(err, shared.ErrArangoDuplicateName) {
			return nil, fmt.Errorf("arangostore: create database: %w", err)
		}
	}
	db, err := c.GetDatabase(ctx, name, nil)
	if err != nil {
		return nil, fmt.Errorf("arangostore: get database: %w", err)
	}
	return db, nil
}

func ensureCollection(ctx context.Context, db arangodb.Database, name string) (arangodb.Collection, error) {
	ok, err := db.CollectionExists(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("arangostore: collection exists: %w", err)
	}
	if !ok {
		coll, err := db.CreateCollectionV2(ctx, name, nil)
		if err == nil {
			return coll, nil
		}
		if !shared.IsArangoErrorWithErrorNum(err, shared.ErrArangoDuplicateName) {
			return nil, fmt.Errorf("arangostore: create collection: %w", err)
		}
	}
	coll, err := db.GetCollection(ctx, name, nil)
	if err != nil {
		return nil, fmt.Errorf("arangostore: get collection: %w", err)
	}
	return coll, nil
}

// Close is a no-op: the driver's HTTP connection pool has nothing to release.
func (s *Store) Close() error { return nil }

// Create inserts a user under a fresh time-ordered key.
func (s *Store) Create(ctx context.Context, in users.NewUser) (users.User, error) {
	if err := in.Validate(); err != nil {
		return users.User{}, err
	}
	now := users.Now()
	d := doc{Key: users.NewID(), Name: in.Name, Email: in.Email, EmailKey: users.EmailKey(in.Email), CreatedAt: now, UpdatedAt: now}
	// A _key clash also reports errorNum 1210; with 80 random bits per
	// millisecond that is not a practical concern.
	var rev string
	err := retryConflicts(func() error {
		meta, err := s.coll.CreateDocument(ctx, d)
		rev = meta.Rev
		return err
	})
	if err != nil {
		return users.User{}, mapError(err)
	}
	d.Rev = rev
	return d.user(), nil
}

// Get reads one user.
func (s *Store) Get(ctx context.Context, id string) (users.User, error) {
	if !users.ValidID(id) {
		return users.User{}, users.ErrNotFound
	}
	var d doc
	meta, err := s.coll.ReadDocument(ctx, id, &d)
	if err != nil {
		return users.User{}, mapError(err)
	}
	d.Key, d.Rev = meta.Key, meta.Rev
	return d.user(), nil
}

// listQuery relies on _key order. AQL compares strings with ICU collation, but
// for fixed-length IDs over [0-9A-Z] that equals byte order, which is what
// the cursor and the other stores use.
const listQuery = `FOR u IN @@coll FILTER u._key > @cursor SORT u._key ASC LIMIT @limit RETURN u`

// List returns users in ID order after opts.Cursor.
func (s *Store) List(ctx context.Context, opts users.ListOptions) (users.Page, error) {
	limit := opts.EffectiveLimit()
	cur, err := s.db.Query(ctx, listQuery, &arangodb.QueryOptions{
		BindVars: map[string]any{"@coll": CollectionName, "cursor": opts.Cursor, "limit": limit + 1},
	})
	if err != nil {
		return users.Page{}, mapError(err)
	}
	defer cur.Close()
	page := users.Page{Users: make([]users.User, 0, limit)}
	for {
		var d doc
		_, err := cur.ReadDocument(ctx, &d)
		if shared.IsNoMoreDocuments(err) {
			break
		}
		if err != nil {
			return users.Page{}, mapError(err)
		}
		if len(page.Users) == limit { // the extra row only proves there is more
			page.NextCursor = page.Users[limit-1].ID
			break
		}
		page.Users = append(page.Users, d.user())
	}
	return page, nil
}

// Replace sets name and email. It is a server-side partial update so
// created_at is kept without a read-modify-write round trip.
func (s *Store) Replace(ctx context.Context, id string, in users.NewUser, ifMatchRev string) (users.User, error) {
	if err := in.Validate(); err != nil {
		return users.User{}, err
	}
	key := users.EmailKey(in.Email)
	return s.update(ctx, id, docPatch{Name: &in.Name, Email: &in.Email, EmailKey: &key}, ifMatchRev)
}

// Patch sets the fields present in p.
func (s *Store) Patch(ctx context.Context, id string, p users.UserPatch, ifMatchRev string) (users.User, error) {
	if err := p.Validate(); err != nil {
		return users.User{}, err
	}
	dp := docPatch{Name: p.Name, Email: p.Email}
	if p.Email != nil {
		key := users.EmailKey(*p.Email)
		dp.EmailKey = &key
	}
	return s.update(ctx, id, dp, ifMatchRev)
}

func (s *Store) update(ctx context.Context, id string, dp docPatch, ifMatchRev string) (users.User, error) {
	if !users.ValidID(id) {
		return users.User{}, users.ErrNotFound
	}
	var out users.User
	err := retryConflicts(func() error {
		dp.UpdatedAt = users.Now()
		var d doc
		resp, err := s.coll.UpdateDocumentWithOptions(ctx, id, dp, &arangodb.CollectionDocumentUpdateOptions{
			IfMatch:   ifMatchRev,
			NewObject: &d,
		})
		if err != nil {
			return err
		}
		d.Key, d.Rev = resp.Key, resp.Rev
		out = d.user()
		return nil
	})
	return out, mapConditional(err, ifMatchRev)
}

// Delete removes the user; its email_key leaves the unique index with it.
func (s *Store) Delete(ctx context.Context, id string, ifMatchRev string) error {
	if !users.ValidID(id) {
		return users.ErrNotFound
	}
	err := retryConflicts(func() error {
		_, err := s.coll.DeleteDocumentWithOptions(ctx, id, &arangodb.CollectionDocumentDeleteOptions{IfMatch: ifMatchRev})
		return err
	})
	return mapConditional(err, ifMatchRev)
}

// retryConflicts re-runs op on RocksDB write-write conflicts (another writer
// held the document or index key). The retry gets the authoritative answer:
// success, 412 if that writer changed the revision, or 1210 if it took the email.
func retryConflicts(op func() error) error {
	const attempts = 5
	var err error
	for range attempts {
		if err = op(); !isWriteConflict(err) {
			return err
		}
	}
	return err
}

// mapConditional is mapError, except that a conflict that outlasted the
// retries counts as a stale revision when the caller sent If-Match.
func mapConditional(err error, ifMatchRev string) error {
	if ifMatchRev != "" && isWriteConflict(err) {
		return users.ErrStaleRevision
	}
	return mapError(err)
}
