// Package windows describes Inarious' windowed usage: tumbling buckets by
// event time (UTC) at a few granularities, each kept for a retention, with a
// grace period for late events, and how a closed bucket is keyed on its
// granularity's windowed topic. The usage group fills the buckets
// (processors/usage), views.Windows reads them, the API serves them.
package windows

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inarious/inarious/codecs"
)

// Spec is one granularity: buckets of Step, kept for Retention.
type Spec struct {
	// Step is the bucket length: whole seconds that divide a day, or whole
	// days, so buckets line up with UTC minutes, hours and days.
	Step time.Duration
	// Retention is how long closed buckets are kept (by their start).
	Retention time.Duration
}

// Config is the set of granularities and the grace period.
type Config struct {
	// Specs, finest first; none turns windowed usage off.
	Specs []Spec
	// Grace is how long after a bucket's end (in the client's event time)
	// late events still count in it.
	Grace time.Duration
}

// DefaultGrace is the default grace period.
const DefaultGrace = time.Minute

// DefaultSpecs keeps minutes for 48 h, hours for 90 days, days for 2 years.
func DefaultSpecs() []Spec {
	return []Spec{
		{Step: time.Minute, Retention: 48 * time.Hour},
		{Step: time.Hour, Retention: 90 * 24 * time.Hour},
		{Step: 24 * time.Hour, Retention: 2 * 365 * 24 * time.Hour},
	}
}

// Default is DefaultSpecs with DefaultGrace.
func Default() Config { return Config{Specs: DefaultSpecs(), Grace: DefaultGrace} }

const day = 24 * time.Hour

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.Grace < 0 {
		return errors.New("windows: grace must not be negative")
	}
	for i, s := range c.Specs {
		switch {
		case s.Step < time.Second || s.Step%time.Second != 0:
			return fmt.Errorf("windows: step %v is not a whole number of seconds", s.Step)
		case day%s.Step != 0 && s.Step%day != 0:
			return fmt.Errorf("windows: step %s neither divides a day nor is whole days", FormatDuration(s.Step))
		case s.Retention < s.Step:
			return fmt.Errorf("windows: retention %s of step %s is shorter than the step", FormatDuration(s.Retention), FormatDuration(s.Step))
		case c.Grace > s.Retention:
			return fmt.Errorf("windows: grace %s is longer than the retention of step %s", FormatDuration(c.Grace), FormatDuration(s.Step))
		case i > 0 && s.Step <= c.Specs[i-1].Step:
			return errors.New("windows: steps must be distinct and finest first")
		}
	}
	return nil
}

// Spec returns the granularity of step, if it is kept.
func (c Config) Spec(step time.Duration) (Spec, bool) {
	for _, s := range c.Specs {
		if s.Step == step {
			return s, true
		}
	}
	return Spec{}, false
}

// ParseSpecs reads "1m:48h,1h:2160h,1d:17520h" (step:retention, any order);
// an empty string is no windows.
func ParseSpecs(s string) ([]Spec, error) {
	var specs []Spec
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		step, ret, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("windows: %q is not step:retention", part)
		}
		st, err := ParseDuration(step)
		if err != nil {
			return nil, fmt.Errorf("windows: step of %q: %w", part, err)
		}
		rt, err := ParseDuration(ret)
		if err != nil {
			return nil, fmt.Errorf("windows: retention of %q: %w", part, err)
		}
		specs = append(specs, Spec{Step: st, Retention: rt})
	}
	slices.SortFunc(specs, func(a, b Spec) int { return int(a.Step - b.Step) })
	return specs, Config{Specs: specs}.Validate()
}

// FormatSpecs is the inverse of ParseSpecs.
func FormatSpecs(specs []Spec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = FormatDuration(s.Step) + ":" + FormatDuration(s.Retention)
	}
	return strings.Join(parts, ",")
}

// DurationPattern is the syntax ParseDuration takes, as the API document
// declares it: whole days, or time.ParseDuration's units without a sign.
const DurationPattern = `^([0-9]+d|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

// TimePattern is the syntax of ParseTime's bounds, as the API document
// declares it: now, a duration before now, or RFC 3339 with a T and a zone.
const TimePattern = `^(now|-([0-9]+d|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))$`

var (
	durationSyntax = regexp.MustCompile(DurationPattern)
	timeSyntax     = regexp.MustCompile(TimePattern)
)

// ParseDuration is time.ParseDuration that also takes whole days ("2d").
// Only DurationPattern is taken, so what the document accepts and what is
// parsed agree (time.ParseDuration alone also takes "+5m", ".5h" or "0").
func ParseDuration(s string) (time.Duration, error) {
	if !durationSyntax.MatchString(s) {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseInt(n, 10, 64)
		if err != nil || d < 0 || d > 100*365 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(d) * day, nil
	}
	return time.ParseDuration(s)
}

// FormatDuration writes d in its largest whole unit: "1d", "1h", "5m", "90s".
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// TopicPrefix starts the name of every windowed topic.
const TopicPrefix = "usage-windows-"

// Topic is the windowed topic of a granularity: its closed buckets.
func Topic(step time.Duration) string { return TopicPrefix + FormatDuration(step) }

// Topics are the windowed topics of c, finest first.
func (c Config) Topics() []string {
	out := make([]string, len(c.Specs))
	for i, s := range c.Specs {
		out[i] = Topic(s.Step)
	}
	return out
}

// StartUnix is the start, in Unix seconds, of the bucket of step holding the
// instant unixNano (floor division: buckets are aligned to the Unix epoch,
// hence to UTC minutes, hours and days).
func StartUnix(unixNano int64, step time.Duration) int64 {
	s := int64(step)
	q := unixNano / s
	if unixNano%s < 0 {
		q--
	}
	return q * s / int64(time.Second)
}

// keyDigits is the fixed width of a key's start: up to the year 33658.
const keyDigits = 12

// Key is the windowed topic's key of client's bucket starting at startUnix:
// client, a NUL, the start as zero-padded decimal seconds, so that one
// client's buckets sort by time and a range of them is one key range.
func Key(client string, startUnix int64) string {
	b := make([]byte, 0, len(client)+1+keyDigits)
	b = append(b, client...)
	b = append(b, 0)
	return string(appendPadded(b, startUnix))
}

func appendPadded(b []byte, n int64) []byte {
	n = max(n, 0)
	var digits [keyDigits]byte
	for i := keyDigits - 1; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, digits[:]...)
}

// ParseKey splits a windowed topic's key.
func ParseKey(key string) (client string, startUnix int64, ok bool) {
	if len(key) < keyDigits+1 || key[len(key)-keyDigits-1] != 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(key[len(key)-keyDigits:], 10, 64)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return key[:len(key)-keyDigits-1], n, true
}

// KeyRange is the key range [start, limit) of client's buckets whose start
// lies in [fromUnix, toUnix]. A client whose name holds a NUL may share it
// with another client's keys: check each key with ParseKey.
func KeyRange(client string, fromUnix, toUnix int64) (start, limit string) {
	return Key(client, fromUnix), Key(client, toUnix+1)
}

// Bucket is one bucket of a client's usage.
type Bucket struct {
	Start     time.Time
	Step      time.Duration
	Total     uint64
	Endpoints map[string]uint64
	// Status is the calls per endpoint by status class (endpoints without a
	// call of known status left out; nil in buckets counted before classes
	// were kept).
	Status map[string]codecs.StatusCounts `json:",omitempty"`
	// Final is true once the bucket closed: its counts no longer change.
	Final bool
}

// End is when the bucket ends.
func (b Bucket) End() time.Time { return b.Start.Add(b.Step) }

// OfService is b narrowed to the endpoints of service (a name as
// codecs.NormalService makes it), its total summed over them.
func (b Bucket) OfService(service string) Bucket {
	b.Total, b.Endpoints, b.Status = narrow(b.Endpoints, b.Status, service)
	return b
}

// OfService is s narrowed to the endpoints of service, as Bucket.OfService.
func (s Sum) OfService(service string) Sum {
	s.Total, s.Endpoints, s.Status = narrow(s.Endpoints, s.Status, service)
	return s
}

func narrow(counts map[string]uint64, status map[string]codecs.StatusCounts, service string) (uint64, map[string]uint64, map[string]codecs.StatusCounts) {
	var total uint64
	outCounts := make(map[string]uint64)
	var outStatus map[string]codecs.StatusCounts
	for k, n := range counts {
		if !codecs.InService(k, service) {
			continue
		}
		outCounts[k] = n
		total += n
		if c, ok := status[k]; ok {
			if outStatus == nil {
				outStatus = make(map[string]codecs.StatusCounts)
			}
			outStatus[k] = c
		}
	}
	return total, outCounts, outStatus
}

// Sum is usage summed over a range of buckets.
type Sum struct {
	Step      time.Duration
	From, To  time.Time // the first bucket's start, the end of the range asked for
	Total     uint64
	Endpoints map[string]uint64
	// Status is the calls per endpoint by status class, as in Bucket.
	Status map[string]codecs.StatusCounts
}

// SumOf adds up buckets, their classes too; Step, From and To are the
// caller's.
func SumOf(buckets []Bucket) Sum {
	s := Sum{Endpoints: map[string]uint64{}, Status: map[string]codecs.StatusCounts{}}
	for _, b := range buckets {
		s.Total += b.Total
		for k, n := range b.Endpoints {
			s.Endpoints[k] += n
		}
		for k, c := range b.Status {
			sc := s.Status[k]
			sc.Add(c)
			s.Status[k] = sc
		}
	}
	return s
}

// MaxBuckets bounds the buckets one series query may span.
const MaxBuckets = 1500

// QueryError is a query that cannot be answered as asked (HTTP 400).
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

func queryErr(format string, args ...any) error {
	return &QueryError{Msg: fmt.Sprintf(format, args...)}
}

// Span is how many buckets of step start in [from, to].
func Span(step time.Duration, from, to time.Time) int64 {
	s := int64(step / time.Second)
	first := StartUnix(from.UnixNano(), step)
	if first < from.Unix() || (first == from.Unix() && from.Nanosecond() > 0) {
		first += s
	}
	last := StartUnix(to.UnixNano(), step)
	if last < first {
		return 0
	}
	return (last-first)/s + 1
}

// CheckSeries reports why the buckets of step starting in [from, to] cannot
// be answered at now: a step not kept, from after to, from beyond the
// step's retention, or more than MaxBuckets buckets.
func (c Config) CheckSeries(step time.Duration, from, to, now time.Time) error {
	spec, ok := c.Spec(step)
	if !ok {
		return queryErr("step %s is not kept; kept: %s", FormatDuration(step), c.steps())
	}
	if from.After(to) {
		return queryErr("from (%s) is after to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	if oldest := now.Add(-spec.Retention); from.Before(oldest) {
		return queryErr("from (%s) is beyond the %s buckets' retention of %s (oldest: %s)",
			from.UTC().Format(time.RFC3339), FormatDuration(step), FormatDuration(spec.Retention), oldest.UTC().Format(time.RFC3339))
	}
	if n := Span(step, from, to); n > MaxBuckets {
		return queryErr("from..to spans %d buckets of %s; at most %d per query", n, FormatDuration(step), MaxBuckets)
	}
	return nil
}

// PlanRange answers "the last window" at now: the finest kept step that
// divides window and keeps it, and the bucket starts to sum, those in
// [now-window, now] (Kafka Streams' fetch(key, from, to) takes windows by
// start the same way). The buckets then cover from their first start to now.
func (c Config) PlanRange(window time.Duration, now time.Time) (step time.Duration, from, to time.Time, err error) {
	if window <= 0 {
		return 0, time.Time{}, time.Time{}, queryErr("window must be positive")
	}
	for _, s := range c.Specs {
		if window%s.Step == 0 && window <= s.Retention {
			return s.Step, now.Add(-window), now, nil
		}
	}
	return 0, time.Time{}, time.Time{}, queryErr("window %s is not a multiple of a kept step within its retention; kept: %s", FormatDuration(window), c.steps())
}

func (c Config) steps() string {
	if len(c.Specs) == 0 {
		return "none (windows are off)"
	}
	return FormatSpecs(c.Specs) + " (step:retention)"
}

// StartBounds are the first and last bucket starts of step, Unix seconds,
// that lie in [from, to].
func StartBounds(step time.Duration, from, to time.Time) (lo, hi int64) {
	lo = StartUnix(from.UnixNano(), step)
	if time.Unix(lo, 0).Before(from) {
		lo += int64(step / time.Second)
	}
	return lo, StartUnix(to.UnixNano(), step)
}

// SeriesFunc reads client's buckets of step whose start lies in [from, to].
type SeriesFunc func(client string, step time.Duration, from, to time.Time) ([]Bucket, error)

// SumLast sums client's usage over the last window at now, as series
// answers it: the buckets of PlanRange's step whose start lies in
// [now-window, now]; the sum covers from the first such start to now.
func (c Config) SumLast(series SeriesFunc, client string, window time.Duration, now time.Time) (Sum, error) {
	step, from, to, err := c.PlanRange(window, now)
	if err != nil {
		return Sum{}, err
	}
	buckets, err := series(client, step, from, to)
	if err != nil {
		return Sum{}, err
	}
	lo, _ := StartBounds(step, from, to)
	sum := SumOf(buckets)
	sum.Step, sum.From, sum.To = step, time.Unix(lo, 0).UTC(), to
	return sum, nil
}
