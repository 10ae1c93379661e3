package codecs

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/inarious/inarious/codecs/activitypb"
)

// Status classes of HTTP responses, the indexes of StatusCounts and of the
// tables' packed class counts (activitypb.EndpointUsage.status_classes).
const (
	Class1xx = iota
	Class2xx
	Class3xx
	Class4xx
	Class5xx
	// ClassOther is any other non-zero status (a producer's mistake).
	ClassOther
	// NumStatusClasses is how many classes there are.
	NumStatusClasses
)

var classNames = [NumStatusClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// StatusClass is the class of an HTTP status: its hundreds for 100-599,
// ClassOther for any other non-zero status; false for 0, a call whose
// status its producer did not send (the original producer's events), which
// counts in no class.
func StatusClass(status int32) (int, bool) {
	switch {
	case status == 0:
		return 0, false
	case status >= 100 && status < 600:
		return int(status/100) - 1, true
	}
	return ClassOther, true
}

// AddClass adds n calls of class to packed class counts (index = class,
// trailing zero classes left out), growing them as needed.
func AddClass(packed []uint64, class int, n uint64) []uint64 {
	for len(packed) <= class {
		packed = append(packed, 0)
	}
	packed[class] += n
	return packed
}

// StatusCounts are calls by status class, indexed by StatusClass. Its JSON
// is an object of the classes with calls, e.g. {"2xx": 12, "4xx": 1}; with
// omitzero a StatusCounts without calls is left out.
type StatusCounts [NumStatusClasses]uint64

// ErrorRates are the shares of the calls with a known status that failed
// (4xx and 5xx) and that failed with a 5xx; 0 without such calls.
func (s StatusCounts) ErrorRates() (failed, serverFailed float64) {
	var known uint64
	for _, n := range s {
		known += n
	}
	if known == 0 {
		return 0, 0
	}
	return float64(s[Class4xx]+s[Class5xx]) / float64(known), float64(s[Class5xx]) / float64(known)
}

// StatusCountsOf reads packed class counts; classes beyond the known ones
// are ignored.
func StatusCountsOf(packed []uint64) StatusCounts {
	var s StatusCounts
	copy(s[:], packed)
	return s
}

// Packed is s as packed class counts: trailing zero classes left out, nil
// without calls.
func (s StatusCounts) Packed() []uint64 {
	n := len(s)
	for n > 0 && s[n-1] == 0 {
		n--
	}
	if n == 0 {
		return nil
	}
	return append([]uint64(nil), s[:n]...)
}

// Add adds o's calls to s.
func (s *StatusCounts) Add(o StatusCounts) {
	for i, n := range o {
		s[i] += n
	}
}

// IsZero reports whether s holds no calls.
func (s StatusCounts) IsZero() bool { return s == StatusCounts{} }

// MarshalJSON writes the classes with calls, in class order.
func (s StatusCounts) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for c, n := range s {
		if n == 0 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, classNames[c]...)
		b = append(b, '"', ':')
		b = strconv.AppendUint(b, n, 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes; unknown class names are
// ignored, as unknown fields are.
func (s *StatusCounts) UnmarshalJSON(b []byte) error {
	*s = StatusCounts{}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for c, name := range classNames {
		s[c] = m[name]
	}
	return nil
}

// SumStatus is the calls by class over every endpoint of byEndpoint.
func SumStatus(byEndpoint map[string]StatusCounts) StatusCounts {
	var s StatusCounts
	for _, c := range byEndpoint {
		s.Add(c)
	}
	return s
}

// StatusMapOf reads a closed bucket's classes per endpoint (nil without any).
func StatusMapOf(wc *activitypb.WindowCounts) map[string]StatusCounts {
	if len(wc.GetStatus()) == 0 {
		return nil
	}
	out := make(map[string]StatusCounts, len(wc.GetStatus()))
	for ep, c := range wc.GetStatus() {
		out[ep] = StatusCountsOf(c.GetCounts())
	}
	return out
}

// StatusMapProto is classes per endpoint as a closed bucket holds them
// (nil without any); endpoints without calls are left out.
func StatusMapProto(byEndpoint map[string]StatusCounts) map[string]*activitypb.StatusClasses {
	var out map[string]*activitypb.StatusClasses
	for ep, c := range byEndpoint {
		if c.IsZero() {
			continue
		}
		if out == nil {
			out = make(map[string]*activitypb.StatusClasses, len(byEndpoint))
		}
		out[ep] = &activitypb.StatusClasses{Counts: c.Packed()}
	}
	return out
}
