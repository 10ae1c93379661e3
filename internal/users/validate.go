package users

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field limits.
const (
	MaxNameRunes  = 200
	MaxEmailBytes = 254 // RFC 5321 path limit minus the angle brackets
)

// Validate checks both fields; it returns a *ValidationError or nil.
func (in NewUser) Validate() error {
	var ve *ValidationError
	if msg := checkName(in.Name); msg != "" {
		ve = ve.add("name", msg)
	}
	if msg := checkEmail(in.Email); msg != "" {
		ve = ve.add("email", msg)
	}
	return ve.orNil()
}

// Validate checks the fields that are present; it returns a *ValidationError or nil.
func (p UserPatch) Validate() error {
	var ve *ValidationError
	if p.Name != nil {
		if msg := checkName(*p.Name); msg != "" {
			ve = ve.add("name", msg)
		}
	}
	if p.Email != nil {
		if msg := checkEmail(*p.Email); msg != "" {
			ve = ve.add("email", msg)
		}
	}
	return ve.orNil()
}

// checkName returns "" when valid. Whitespace is rejected, not trimmed, so
// what the client sent is exactly what is stored.
func checkName(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case s == "":
		return "must not be empty"
	case utf8.RuneCountInString(s) > MaxNameRunes:
		return "must be at most 200 characters"
	case strings.TrimSpace(s) != s:
		return "must not have leading or trailing whitespace"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

// checkEmail returns "" when valid. The parsed address must equal the input,
// which rejects display names ("Ann <a@b>"), comments and padding.
func checkEmail(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case s == "":
		return "must not be empty"
	case len(s) > MaxEmailBytes:
		return "must be at most 254 bytes"
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "must be a plain email address such as name@example.com"
	}
	return ""
}
