package alerts_test

import (
	"errors"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/alerts"
)

func TestSignatureVerifiableByReceiver(t *testing.T) {
	body := []byte(`{"id":"abc","rule":"r"}`)
	at := time.Unix(1765000000, 0)
	h := alerts.Sign("whsec", at, body)
	if err := alerts.Verify("whsec", h, body, 5*time.Minute, at.Add(time.Minute)); err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	cases := []struct {
		name, secret, header string
		body                 []byte
		now                  time.Time
		want                 error
	}{
		{"other body", "whsec", h, []byte(`{"id":"abd","rule":"r"}`), at, alerts.ErrBadSignature},
		{"other secret", "other", h, body, at, alerts.ErrBadSignature},
		{"no v1", "whsec", "t=1765000000", body, at, alerts.ErrBadSignature},
		{"garbage", "whsec", "nonsense", body, at, alerts.ErrBadSignature},
		{"too old", "whsec", h, body, at.Add(10 * time.Minute), alerts.ErrStale},
	}
	for _, c := range cases {
		if err := alerts.Verify(c.secret, c.header, c.body, 5*time.Minute, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
