package middleware

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"sync/atomic"
)

// maxRequestIDLen bounds a request id taken from a caller.
const maxRequestIDLen = 64

// requestID keeps a caller's well-formed id, so a request can be traced
// across services, and makes one otherwise.
func (m *Middleware) requestID(r *http.Request) string {
	if m.cfg.requestIDHeader != "" {
		if v := r.Header[m.cfg.requestIDHeader]; len(v) > 0 && len(v[0]) <= maxRequestIDLen && v[0] != "" && isToken(v[0]) {
			return v[0]
		}
	}
	return newID(requestIDs)
}

// idCounter numbers the ids of one sequence. Multiplying by an odd
// constant is a bijection on uint64, so ids are unique for 2^64 of them,
// and the random start keeps processes apart: no crypto/rand read per id.
// Ids name requests and events; they are no secret.
type idCounter struct{ n atomic.Uint64 }

func newIDCounter() *idCounter {
	c := new(idCounter)
	var b [8]byte
	_, _ = rand.Read(b[:])
	c.n.Store(binary.LittleEndian.Uint64(b[:]))
	return c
}

var requestIDs = newIDCounter()

// newID is the next id of c, 16 hex digits.
func newID(c *idCounter) string {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], c.n.Add(1)*0x9e3779b97f4a7c15)
	var b [16]byte
	hex.Encode(b[:], n[:])
	return string(b[:])
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
