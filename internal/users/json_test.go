package users_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/users"
)

// AppendJSON must be encoding/json's output exactly, escapes and errors
// included, since stored documents and responses come from it.
func TestAppendJSONIsMarshal(t *testing.T) {
	utc := time.Date(2026, 11, 29, 15, 4, 5, 123000000, time.UTC)
	for _, u := range []users.User{
		{},
		{ID: users.NewID(), Name: "Ann", Email: "ann@example.com", CreatedAt: utc, UpdatedAt: utc.Add(time.Second), Rev: "1z"},
		{Name: `Q "quoted" \ <b>&amp;</b>`, Email: "tab\there@example.com"},
		{Name: "Zoë \u2028 \x7f \x01", Email: "bad\xffutf8"},
		{CreatedAt: utc.Truncate(time.Second), UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))},
		{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{UpdatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		want, wantErr := json.Marshal(u)
		got, err := users.AppendJSON([]byte("prefix"), &u)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%+v: error %v, encoding/json's %v", u, err, wantErr)
			continue
		}
		if err == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("AppendJSON(%+v)\n got %s\nwant prefix%s", u, got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("Ann", "ann@example.com", "1z", int64(1700000000123), "")
	f.Add("<&>", "\xff", "\u2028", int64(-70000000000000), "Europe/Berlin")
	f.Fuzz(func(t *testing.T, name, email, rev string, ms int64, zone string) {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		ts := time.UnixMilli(ms).In(loc)
		u := users.User{ID: "id", Name: name, Email: email, CreatedAt: ts, UpdatedAt: ts.UTC(), Rev: rev}
		want, wantErr := json.Marshal(u)
		got, err := users.AppendJSON(nil, &u)
		if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("AppendJSON = %s, %v; encoding/json %s, %v", got, err, want, wantErr)
		}
	})
}
