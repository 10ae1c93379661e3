package userhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/inarious/inarious/internal/jsonbody"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
)

const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json" // RFC 7396
)

// decode reads exactly one JSON value with no unknown fields into v and
// writes the 4xx itself when it returns false.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any, accept ...string) bool {
	if !jsonbody.ContentTypeOK(r.Header.Get("Content-Type"), accept) {
		problem.Write(w, r, http.StatusUnsupportedMediaType, "Content-Type must be "+strings.Join(accept, " or "))
		return false
	}
	bp := bodyBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyBuffers.Put(bp)
		}
	}()
	body, readErr := readUpTo((*bp)[:0], r.Body, h.maxBody)
	*bp = body
	if errors.Is(readErr, io.EOF) && json.Valid(body) {
		// The whole body, one value and nothing else: what decodeStream's
		// two Decode calls would establish, without their decoders.
		err := decodeObject(bytes.TrimSpace(body), v)
		if err == nil {
			return true
		}
		problem.Write(w, r, http.StatusBadRequest, jsonbody.Message(err))
		return false
	}
	// Anything else answers as before: the stream decoder reads what was
	// read already, then the rest of the body (or the read's error).
	var rest io.Reader = http.MaxBytesReader(w, r.Body, h.maxBody-int64(len(body)))
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		rest = errReader{readErr}
	}
	return decodeStream(w, r, io.MultiReader(bytes.NewReader(body), rest), v)
}

// Bodies up to maxPooledBody keep their buffer for the next request.
const maxPooledBody = 4 << 10

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readUpTo appends from r to buf until EOF, an error, or max bytes. It
// returns io.EOF when the body ended within max bytes, nil when max bytes
// were read and the body may go on.
func readUpTo(buf []byte, r io.Reader, max int64) ([]byte, error) {
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):min(int64(cap(buf)), max)]
		n, err := r.Read(room)
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeStream decodes body, a stream of at most maxBody bytes, as decode
// promises.
func decodeStream(w http.ResponseWriter, r *http.Request, body io.Reader, v any) bool {
	return jsonbody.DecodeStream(w, r, body, v, decodeObject)
}

// decodeObject rejects null, arrays and scalars up front: they would
// otherwise decode as an empty (and, for PATCH, valid) document.
func decodeObject(raw json.RawMessage, v any) error {
	if in, ok := v.(*users.NewUser); ok && len(raw) > 0 && raw[0] == '{' && jsonbody.WellFormed(raw) && decodePlainNewUser(raw, in) {
		return nil
	}
	return jsonbody.Object(raw, v)
}

// decodePlainNewUser decodes the body POST and PUT usually get, an object
// of "name" and "email" strings without escapes, as encoding/json would
// (a repeated key: the last wins). It reports false, having changed
// nothing, for any other object. raw must be valid JSON.
func decodePlainNewUser(raw []byte, in *users.NewUser) bool {
	out := *in
	i := skipSpace(raw, 1) // after '{'
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for {
		key, next, ok := plainString(raw, i)
		if !ok {
			return false
		}
		if i = skipSpace(raw, next); i >= len(raw) || raw[i] != ':' {
			return false
		}
		val, next, ok := plainString(raw, skipSpace(raw, i+1))
		if !ok {
			return false
		}
		switch string(key) {
		case "name":
			out.Name = string(val)
		case "email":
			out.Email = string(val)
		default:
			return false // unknown, or a case-folded match: left to encoding/json
		}
		if i = skipSpace(raw, next); i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			*in = out
			return true
		default:
			return false
		}
	}
}

// plainString returns the contents of the JSON string at raw[i] and the
// index after it, if it has no escapes (then its bytes are its value).
func plainString(raw []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(raw) || raw[i] != '"' {
		return nil, i, false
	}
	n := bytes.IndexByte(raw[i+1:], '"')
	if n < 0 {
		return nil, i, false
	}
	s = raw[i+1 : i+1+n]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, i, false
	}
	return s, i + n + 2, true
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// ifMatch returns the revision of a single strong entity tag, "" for none or
// "*" (the store then only requires that the user exists). Weak tags can never
// match under If-Match's strong comparison, so they fail with 412 directly.
func ifMatch(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	switch {
	case v == "" || v == "*":
		return "", true
	case strings.HasPrefix(v, "W/"):
		problem.Write(w, r, http.StatusPreconditionFailed, "If-Match requires a strong entity tag")
		return "", false
	case len(v) >= 3 && v[0] == '"' && v[len(v)-1] == '"' && !strings.ContainsAny(v[1:len(v)-1], `",`):
		return v[1 : len(v)-1], true
	}
	problem.Write(w, r, http.StatusBadRequest, `If-Match must be one entity tag such as "3f", or *`)
	return "", false
}
