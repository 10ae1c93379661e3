package users

import (
	"encoding/json"
	"time"
)

// AppendJSON appends u as encoding/json's Marshal encodes it, byte for byte,
// and fails where Marshal fails. The common case (ASCII text without
// characters JSON or HTML escape, UTC times) takes no reflection and no
// allocation: stores and handlers encode a user on every write, where
// encoding/json's cost showed in the profile of POST /users.
func AppendJSON(dst []byte, u *User) ([]byte, error) {
	if !plainTime(u.CreatedAt) || !plainTime(u.UpdatedAt) {
		b, err := json.Marshal(u)
		return append(dst, b...), err
	}
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, u.ID)
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, u.Name)
	dst = append(dst, `,"email":`...)
	dst = appendJSONString(dst, u.Email)
	dst = append(dst, `,"created_at":"`...)
	dst = u.CreatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","updated_at":"`...)
	dst = u.UpdatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","rev":`...)
	dst = appendJSONString(dst, u.Rev)
	return append(dst, '}'), nil
}

// plainTime reports whether t's MarshalJSON is its RFC3339Nano format: a
// four-digit year and offset zero ("Z"). Others, including the ones
// MarshalJSON refuses, are left to encoding/json.
func plainTime(t time.Time) bool {
	_, offset := t.Zone()
	y := t.Year()
	return offset == 0 && y >= 0 && y <= 9999
}

// appendJSONString copies printable ASCII that encoding/json leaves as it
// is; any other string goes through encoding/json, so its escaping (HTML
// characters, control characters, invalid UTF-8, U+2028) stays exactly
// encoding/json's.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
