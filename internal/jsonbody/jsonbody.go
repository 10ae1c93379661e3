// Package jsonbody reads a request body that must be one JSON object with
// known fields only, and answers what is wrong with it as a problem
// (400, 413, 415), in the same words on every route that takes JSON.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/inarious/inarious/internal/problem"
)

// MediaType is the media type of a JSON body.
const MediaType = "application/json"

// Errors Object returns besides encoding/json's.
var (
	ErrNotObject = errors.New("body is not a JSON object")
	ErrBadText   = errors.New("body is not well-formed Unicode")
)

// Read decodes r's body, of at most maxBody bytes and Content-Type
// application/json, into v (Decode); it writes the 4xx itself when it
// returns false.
func Read(w http.ResponseWriter, r *http.Request, maxBody int64, v any) bool {
	if !ContentTypeOK(r.Header.Get("Content-Type"), []string{MediaType}) {
		problem.Write(w, r, http.StatusUnsupportedMediaType, "Content-Type must be "+MediaType)
		return false
	}
	return Decode(w, r, maxBody, v)
}

// Decode decodes r's body, of at most maxBody bytes, as one JSON object
// into v with Object; it writes the 4xx itself when it returns false.
func Decode(w http.ResponseWriter, r *http.Request, maxBody int64, v any) bool {
	return DecodeStream(w, r, http.MaxBytesReader(w, r.Body, maxBody), v, Object)
}

// DecodeStream decodes body (through an http.MaxBytesReader, so that too
// long a body gets 413) as exactly one JSON value, which object decodes
// into v; it writes the 4xx itself when it returns false.
func DecodeStream(w http.ResponseWriter, r *http.Request, body io.Reader, v any, object func(json.RawMessage, any) error) bool {
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		// Anything after the first value (even another object) is rejected.
		if err = dec.Decode(&struct{}{}); errors.Is(err, io.EOF) {
			err = object(raw, v)
		} else if err == nil || !TooLarge(err) {
			problem.Write(w, r, http.StatusBadRequest, "request body must contain a single JSON object")
			return false
		}
	}
	switch {
	case err == nil:
		return true
	case TooLarge(err):
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "request body is too large")
	default:
		problem.Write(w, r, http.StatusBadRequest, Message(err))
	}
	return false
}

// Object decodes raw, one valid JSON value, into v: an object of v's
// fields only, in well-formed text. Null, arrays and scalars are refused
// up front: they would otherwise decode as an empty document.
func Object(raw json.RawMessage, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return ErrNotObject
	}
	if !WellFormed(raw) {
		return ErrBadText
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// WellFormed reports whether raw, a valid JSON value, is UTF-8 and has no
// \u escape of a lone surrogate. encoding/json would otherwise store U+FFFD
// in their place, so what is stored would not be what the client sent.
func WellFormed(raw []byte) bool {
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

// TooLarge reports whether err is an http.MaxBytesReader's.
func TooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// Message describes a decoding error without echoing internal details.
func Message(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "request body must not be empty"
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON"
	case errors.Is(err, ErrNotObject):
		return "request body must be a JSON object"
	case errors.Is(err, ErrBadText):
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

// ContentTypeOK accepts the listed media types, with an optional UTF-8 charset.
func ContentTypeOK(header string, accept []string) bool {
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
