// Package boltstore is the embedded, durable users.Store on bbolt. bbolt
// allows one write transaction at a time, so doing every check and write of
// an operation inside one transaction makes uniqueness and revision checks
// race-free without extra locking.
package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/inarious/inarious/internal/users"
)

var (
	usersBucket  = []byte("users")  // id -> JSON users.User
	emailsBucket = []byte("emails") // users.EmailKey(email) -> id
)

// Store is a users.Store backed by a bbolt file.
type Store struct {
	db     *bolt.DB
	writes *committer
}

var _ users.Store = (*Store)(nil)

// Open opens or creates the database file at path. It fails after a second
// instead of blocking forever when another process holds the file lock.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// No freelist page written per commit (bbolt rebuilds the list
		// when it opens the file, as etcd configures it): one page write
		// fewer on every commit, the data as durable as before.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{usersBucket, emailsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: init buckets: %w", err)
	}
	// Concurrent writes share one transaction and its two fsyncs.
	return &Store{db: db, writes: newCommitter(db)}, nil
}

// Stats counts the group commit's work since Open.
type Stats struct {
	Commits uint64 // groups committed (a group with a failing write takes more than one transaction)
	Writes  uint64 // writes they held (Writes / Commits is the mean group)
}

// Stats reports the group commit's counts, e.g. for a benchmark's mean group.
func (s *Store) Stats() Stats {
	commits, writes := s.writes.stats()
	return Stats{Commits: commits, Writes: writes}
}

// Close commits the writes already waiting, then releases the file.
func (s *Store) Close() error {
	s.writes.close()
	return s.db.Close()
}

// Create stores a new user with a fresh ID.
func (s *Store) Create(ctx context.Context, in users.NewUser) (users.User, error) {
	if err := in.Validate(); err != nil {
		return users.User{}, err
	}
	if err := ctx.Err(); err != nil {
		return users.User{}, err
	}
	now := users.Now()
	u := users.User{ID: users.NewID(), Name: in.Name, Email: in.Email, CreatedAt: now, UpdatedAt: now}
	// Keys are made before the shared transaction, which every write waits on.
	emailKey, id := []byte(users.EmailKey(u.Email)), []byte(u.ID)
	err := s.writes.write(func(tx *bolt.Tx) error {
		emails := tx.Bucket(emailsBucket)
		if emails.Get(emailKey) != nil {
			return users.ErrDuplicateEmail
		}
		if err := emails.Put(emailKey, id); err != nil {
			return err
		}
		return putUser(tx, &u)
	})
	if err != nil {
		return users.User{}, err
	}
	return u, nil
}

// Get returns the user with id.
func (s *Store) Get(ctx context.Context, id string) (users.User, error) {
	if err := ctx.Err(); err != nil {
		return users.User{}, err
	}
	var u users.User
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		u, err = getUser(tx, id)
		return err
	})
	return u, err
}

// List returns users in ID order after opts.Cursor.
func (s *Store) List(ctx context.Context, opts users.ListOptions) (users.Page, error) {
	if err := ctx.Err(); err != nil {
		return users.Page{}, err
	}
	limit := opts.EffectiveLimit()
	page := users.Page{Users: make([]users.User, 0, limit)}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(usersBucket).Cursor()
		k, v := c.Seek([]byte(opts.Cursor))
		if k != nil && string(k) == opts.Cursor {
			k, v = c.Next() // the cursor is the last ID already returned
		}
		for ; k != nil; k, v = c.Next() {
			if len(page.Users) == limit {
				page.NextCursor = page.Users[limit-1].ID
				return nil
			}
			var u users.User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("boltstore: decode user %q: %w", k, err)
			}
			page.Users = append(page.Users, u)
		}
		return nil
	})
	if err != nil {
		return users.Page{}, err
	}
	return page, nil
}

// Replace overwrites name and email.
func (s *Store) Replace(ctx context.Context, id string, in users.NewUser, ifMatchRev string) (users.User, error) {
	if err := in.Validate(); err != nil {
		return users.User{}, err
	}
	return s.update(ctx, id, ifMatchRev, func(u users.User) users.User {
		u.Name, u.Email = in.Name, in.Email
		return u
	})
}

// Patch changes the fields present in p.
func (s *Store) Patch(ctx context.Context, id string, p users.UserPatch, ifMatchRev string) (users.User, error) {
	if err := p.Validate(); err != nil {
		return users.User{}, err
	}
	return s.update(ctx, id, ifMatchRev, p.Apply)
}

// Delete removes the user and frees its email.
func (s *Store) Delete(ctx context.Context, id string, ifMatchRev string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.writes.write(func(tx *bolt.Tx) error {
		cur, err := getUser(tx, id)
		if err != nil {
			return err
		}
		if ifMatchRev != "" && ifMatchRev != cur.Rev {
			return users.ErrStaleRevision
		}
		if err := tx.Bucket(emailsBucket).Delete([]byte(users.EmailKey(cur.Email))); err != nil {
			return err
		}
		return tx.Bucket(usersBucket).Delete([]byte(id))
	})
}

// update is the shared read-check-modify-write of Replace and Patch.
func (s *Store) update(ctx context.Context, id, ifMatchRev string, change func(users.User) users.User) (users.User, error) {
	if err := ctx.Err(); err != nil {
		return users.User{}, err
	}
	var out users.User
	err := s.writes.write(func(tx *bolt.Tx) error {
		cur, err := getUser(tx, id)
		if err != nil {
			return err
		}
		if ifMatchRev != "" && ifMatchRev != cur.Rev {
			return users.ErrStaleRevision
		}
		next := change(cur)
		next.UpdatedAt = users.Now()
		if err := moveEmail(tx, id, cur.Email, next.Email); err != nil {
			return err
		}
		if err := putUser(tx, &next); err != nil {
			return err
		}
		out = next
		return nil
	})
	return out, err
}

// moveEmail re-points the email index when the normalised email changes.
func moveEmail(tx *bolt.Tx, id, oldEmail, newEmail string) error {
	oldKey, newKey := users.EmailKey(oldEmail), users.EmailKey(newEmail)
	if oldKey == newKey {
		return nil
	}
	emails := tx.Bucket(emailsBucket)
	if owner := emails.Get([]byte(newKey)); owner != nil && string(owner) != id {
		return users.ErrDuplicateEmail
	}
	if err := emails.Delete([]byte(oldKey)); err != nil {
		return err
	}
	return emails.Put([]byte(newKey), []byte(id))
}

func getUser(tx *bolt.Tx, id string) (users.User, error) {
	if !users.ValidID(id) {
		return users.User{}, users.ErrNotFound
	}
	v := tx.Bucket(usersBucket).Get([]byte(id))
	if v == nil {
		return users.User{}, users.ErrNotFound
	}
	var u users.User
	if err := json.Unmarshal(v, &u); err != nil {
		return users.User{}, fmt.Errorf("boltstore: decode user %q: %w", id, err)
	}
	return u, nil
}

// putUser assigns a new Rev and writes u. The bucket sequence is unique for
// the life of the file, so a revision is never reused, even after a delete.
func putUser(tx *bolt.Tx, u *users.User) error {
	b := tx.Bucket(usersBucket)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	u.Rev = strconv.FormatUint(seq, 36)
	// Not a pooled buffer: bbolt keeps v until the transaction commits.
	v, err := users.AppendJSON(make([]byte, 0, 192), u)
	if err != nil {
		return err
	}
	return b.Put([]byte(u.ID), v)
}
