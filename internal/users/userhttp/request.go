package userhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

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
	if !contentTypeOK(r.Header.Get("Content-Type"), accept) {
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
		problem.Write(w, r, http.StatusBadRequest, decodeMessage(err))
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
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		// Anything after the first value (even another object) is rejected.
		if err = dec.Decode(&struct{}{}); errors.Is(err, io.EOF) {
			err = decodeObject(raw, v)
		} else if err == nil || !isTooLarge(err) {
			problem.Write(w, r, http.StatusBadRequest, "request body must contain a single JSON object")
			return false
		}
	}
	switch {
	case err == nil:
		return true
	case isTooLarge(err):
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "request body is too large")
	default:
		problem.Write(w, r, http.StatusBadRequest, decodeMessage(err))
	}
	return false
}

var errNotObject = errors.New("body is not a JSON object")

// decodeObject rejects null, arrays and scalars up front: they would
// otherwise decode as an empty (and, for PATCH, valid) document.
func decodeObject(raw json.RawMessage, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	if !wellFormedText(raw) {
		return errBadText
	}
	if in, ok := v.(*users.NewUser); ok && decodePlainNewUser(raw, in) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
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

var errBadText = errors.New("body is not well-formed Unicode")

// wellFormedText reports whether raw, a valid JSON value, is UTF-8 and has no
// \u escape of a lone surrogate. encoding/json would otherwise store U+FFFD
// in their place, so what is stored would not be what the client sent.
func wellFormedText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	// In valid JSON a backslash only starts an escape inside a string.
	for i := 0; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r := hexRune(raw[i+1 : i+5])
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xdc00 || len(raw)-i < 7 || raw[i+1] != '\\' || raw[i+2] != 'u' ||
			utf16.DecodeRune(r, hexRune(raw[i+3:i+7])) == utf8.RuneError {
			return false
		}
		i += 6
	}
	return true
}

func hexRune(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// decodeMessage describes a JSON error without echoing internal details.
func decodeMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "request body must not be empty"
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON"
	case errors.Is(err, errNotObject):
		return "request body must be a JSON object"
	case errors.Is(err, errBadText):
		return "request body must be UTF-8 with no unpaired surrogate escapes"
	case errors.As(err, &typ):
		if typ.Field != "" {
			return "field " + typ.Field + " has the wrong type"
		}
		return "request body must be a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this; the text names the field.
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "request body could not be decoded"
}

// contentTypeOK accepts the listed media types, with an optional UTF-8 charset.
func contentTypeOK(header string, accept []string) bool {
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	for _, a := range accept {
		if mt == a {
			return true
		}
	}
	return false
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
