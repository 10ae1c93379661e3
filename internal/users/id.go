package users

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// IDs are ULID-shaped: 48-bit Unix milliseconds then 80 random bits, in
// Crockford base32. The alphabet is in ASCII order and the length is fixed,
// so string order is creation-time order (to the millisecond), which keeps
// B-tree inserts append-mostly and gives List a stable sort key.
const idLen = 26

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a fresh, time-ordered, random ID.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[:6], ts[2:])
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go ≥1.24)
	return idEncoding.EncodeToString(b[:])
}

// ValidID reports whether s is in canonical NewID form. Stores treat other
// strings as unknown IDs; HTTP treats them as 404.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	b, err := idEncoding.DecodeString(s)
	// Re-encoding rejects non-canonical forms whose 2 spare bits are set.
	return err == nil && len(b) == 16 && idEncoding.EncodeToString(b) == s
}
