package windows_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without zoneinfo

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/windows"
)

func TestParseSpecsDefaultFlag(t *testing.T) {
	specs, err := windows.ParseSpecs("1h:2160h, 1m:48h,1d:17520h")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(specs, windows.DefaultSpecs()) {
		t.Errorf("got %v, want the defaults finest first %v", specs, windows.DefaultSpecs())
	}
	if got := windows.FormatSpecs(specs); got != "1m:2d,1h:90d,1d:730d" {
		t.Errorf("FormatSpecs = %q", got)
	}
	if specs, err := windows.ParseSpecs(""); err != nil || len(specs) != 0 {
		t.Errorf("empty: %v %v, want windows off", specs, err)
	}
}

func TestParseSpecsRejects(t *testing.T) {
	for _, in := range []string{
		"1m",            // no retention
		"1m:48h,1m:1h",  // duplicate step
		"7m:48h",        // does not divide a day
		"1500ms:1h",     // not whole seconds
		"36h:90d",       // neither divides a day nor whole days
		"1h:30m",        // retention shorter than the step
		"1x:48h",        // not a duration
		"1m:-1h",        // negative retention
		"-1m:1h",        // negative step
		"1m:48h,1h:xyz", // bad retention
	} {
		if _, err := windows.ParseSpecs(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if err := (windows.Config{Specs: windows.DefaultSpecs(), Grace: 49 * time.Hour}).Validate(); err == nil {
		t.Error("grace longer than the 1m retention accepted")
	}
	if err := (windows.Config{Grace: -time.Second}).Validate(); err == nil {
		t.Error("negative grace accepted")
	}
	if err := windows.Default().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestParseDurationDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"2d": 48 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := windows.ParseDuration(in); err != nil || got != want {
			t.Errorf("%q = %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "1.5d", "-2d", "x", "+5m", ".5h", "5.h", "0", "+5d", "5m "} {
		if _, err := windows.ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestTopicNames(t *testing.T) {
	got := windows.Default().Topics()
	want := []string{"usage-windows-1m", "usage-windows-1h", "usage-windows-1d"}
	if !slices.Equal(got, want) {
		t.Errorf("topics %v, want %v", got, want)
	}
}

// Buckets are [start, start+step): 59.999 s is still in the first minute,
// 60 s starts the next. Instants before the epoch floor too.
func TestStartUnixBoundaries(t *testing.T) {
	base := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		at   time.Time
		step time.Duration
		want time.Time
	}{
		{base, time.Minute, base},
		{base.Add(59*time.Second + 999*time.Millisecond), time.Minute, base},
		{base.Add(59*time.Second + 999999999), time.Minute, base},
		{base.Add(60 * time.Second), time.Minute, base.Add(time.Minute)},
		{base.Add(-time.Nanosecond), time.Minute, base.Add(-time.Minute)},
		{base.Add(59 * time.Minute), time.Hour, base},
		{base.Add(13 * time.Hour), 24 * time.Hour, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		{time.Unix(-1, 0), time.Minute, time.Unix(-60, 0)},
	}
	for _, c := range cases {
		if got := windows.StartUnix(c.at.UnixNano(), c.step); got != c.want.Unix() {
			t.Errorf("StartUnix(%s, %v) = %s, want %s", c.at.Format(time.RFC3339Nano), c.step,
				time.Unix(got, 0).UTC().Format(time.RFC3339), c.want.Format(time.RFC3339))
		}
	}
}

// Buckets are UTC: across Berlin's switch to summer time (2025-03-30, 02:00
// CET → 03:00 CEST) local 01:30 and 03:30 are one hour apart, in adjacent
// hour buckets, and the day bucket starts at midnight UTC, not local.
func TestBucketsAreUTCAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Date(2025, 3, 30, 1, 30, 0, 0, berlin) // 00:30 UTC
	after := time.Date(2025, 3, 30, 3, 30, 0, 0, berlin)  // 01:30 UTC
	hb, ha := windows.StartUnix(before.UnixNano(), time.Hour), windows.StartUnix(after.UnixNano(), time.Hour)
	if ha-hb != 3600 {
		t.Errorf("hour buckets %d apart, want adjacent (3600 s)", ha-hb)
	}
	if got := time.Unix(hb, 0).UTC(); got != time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC) {
		t.Errorf("hour bucket of 01:30 CET starts %s", got)
	}
	midnightLocal := time.Date(2025, 3, 30, 0, 30, 0, 0, berlin) // 23:30 UTC the day before
	if got := time.Unix(windows.StartUnix(midnightLocal.UnixNano(), 24*time.Hour), 0).UTC(); got != time.Date(2025, 3, 29, 0, 0, 0, 0, time.UTC) {
		t.Errorf("day bucket of 00:30 local = %s, want 2025-03-29 UTC", got)
	}
	// The autumn switch repeats local 02:00-03:00: two distinct UTC hours.
	first := time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC)  // 02:30 CEST
	second := time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC) // 02:30 CET
	if first.In(berlin).Hour() != second.In(berlin).Hour() {
		t.Fatal("test premise: both are 02:30 local")
	}
	if windows.StartUnix(first.UnixNano(), time.Hour) == windows.StartUnix(second.UnixNano(), time.Hour) {
		t.Error("the repeated local hour fell into one bucket")
	}
}

func TestKeysSortByTimeAndRoundTrip(t *testing.T) {
	starts := []int64{0, 59, 60, 3600, 1700000000, 99999999999}
	var keys []string
	for _, s := range starts {
		k := windows.Key("10.0.0.1", s)
		c, got, ok := windows.ParseKey(k)
		if !ok || c != "10.0.0.1" || got != s {
			t.Errorf("ParseKey(%q) = %q %d %v", k, c, got, ok)
		}
		keys = append(keys, k)
	}
	if !slices.IsSorted(keys) {
		t.Errorf("keys do not sort by start: %q", keys)
	}
	// A client that is a prefix of another sorts apart from it.
	if windows.Key("10.0.0.1", 99999999999) >= windows.Key("10.0.0.10", 0) {
		t.Error("client 10.0.0.1's keys run into 10.0.0.10's")
	}
	lo, hi := windows.KeyRange("c", 60, 120)
	for s, in := range map[int64]bool{59: false, 60: true, 120: true, 121: false} {
		k := windows.Key("c", s)
		if got := k >= lo && k < hi; got != in {
			t.Errorf("start %d in range = %v, want %v", s, got, in)
		}
	}
	for _, bad := range []string{"", "c", "c\x00123", "c\x0012345678901x", "c-000000000060"} {
		if _, _, ok := windows.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestCheckSeries(t *testing.T) {
	w := windows.Default()
	now := time.Date(2025, 6, 1, 12, 3, 30, 0, time.UTC)
	ok := []struct {
		step     time.Duration
		from, to time.Time
	}{
		{time.Minute, now.Add(-time.Hour), now},
		{time.Minute, now.Add(-48 * time.Hour), now.Add(-23 * time.Hour)}, // oldest kept, 1500 buckets at most
		{time.Hour, now.Add(-90 * 24 * time.Hour), now.Add(-30 * 24 * time.Hour)},
		{time.Minute, now, now},
	}
	for _, c := range ok {
		if err := w.CheckSeries(c.step, c.from, c.to, now); err != nil {
			t.Errorf("%v %s..%s: %v", c.step, c.from, c.to, err)
		}
	}
	bad := []struct {
		step     time.Duration
		from, to time.Time
		says     string
	}{
		{5 * time.Minute, now.Add(-time.Hour), now, "not kept"},
		{time.Minute, now, now.Add(-time.Minute), "after"},
		{time.Minute, now.Add(-48*time.Hour - time.Second), now.Add(-47 * time.Hour), "retention"},
		{time.Minute, now.Add(-26 * time.Hour), now, "1560 buckets"},
	}
	for _, c := range bad {
		err := w.CheckSeries(c.step, c.from, c.to, now)
		var qe *windows.QueryError
		if !errors.As(err, &qe) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v %s..%s: %v, want a QueryError saying %q", c.step, c.from, c.to, err, c.says)
		}
	}
}

func TestSpanCountsStartsInClosedRange(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		from, to time.Time
		want     int64
	}{
		{t0, t0, 1},
		{t0, t0.Add(59 * time.Second), 1},
		{t0, t0.Add(time.Minute), 2},
		{t0.Add(time.Nanosecond), t0.Add(time.Minute), 1},
		{t0.Add(30 * time.Second), t0.Add(50 * time.Second), 0},
		{t0.Add(-time.Hour), t0, 61},
	}
	for _, c := range cases {
		if got := windows.Span(time.Minute, c.from, c.to); got != c.want {
			t.Errorf("Span(%s, %s) = %d, want %d", c.from.Format(time.TimeOnly), c.to.Format(time.TimeOnly), got, c.want)
		}
	}
}

func TestPlanRangePicksFinestStepThatFits(t *testing.T) {
	w := windows.Default()
	now := time.Date(2025, 6, 1, 12, 3, 30, 0, time.UTC)
	cases := []struct {
		window, step time.Duration
	}{
		{5 * time.Minute, time.Minute},
		{90 * time.Minute, time.Minute},
		{48 * time.Hour, time.Minute},
		{72 * time.Hour, time.Hour},
		{100 * 24 * time.Hour, 24 * time.Hour},
	}
	for _, c := range cases {
		step, from, to, err := w.PlanRange(c.window, now)
		if err != nil || step != c.step || !from.Equal(now.Add(-c.window)) || !to.Equal(now) {
			t.Errorf("PlanRange(%v) = %v %s %s %v, want step %v", c.window, step, from, to, err, c.step)
		}
	}
	for _, window := range []time.Duration{0, 30 * time.Second, 90 * time.Second, 3 * 365 * 24 * time.Hour} {
		if _, _, _, err := w.PlanRange(window, now); err == nil {
			t.Errorf("PlanRange(%v) accepted", window)
		}
	}
}

func TestSum(t *testing.T) {
	sum := windows.SumOf([]windows.Bucket{
		{Total: 3, Endpoints: map[string]uint64{"GET /a": 2, "POST /b": 1},
			Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 1, codecs.Class4xx: 1}, "POST /b": {codecs.Class5xx: 1}}},
		{Total: 2, Endpoints: map[string]uint64{"GET /a": 2}, Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 1}}},
		{Total: 1, Endpoints: map[string]uint64{"GET /a": 1}}, // counted before classes were kept
	})
	if sum.Total != 6 || sum.Endpoints["GET /a"] != 5 || sum.Endpoints["POST /b"] != 1 || len(sum.Endpoints) != 2 {
		t.Errorf("SumOf = %+v", sum)
	}
	want := map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 2, codecs.Class4xx: 1}, "POST /b": {codecs.Class5xx: 1}}
	if len(sum.Status) != len(want) || sum.Status["GET /a"] != want["GET /a"] || sum.Status["POST /b"] != want["POST /b"] {
		t.Errorf("SumOf classes %v, want %v", sum.Status, want)
	}
}

// A bucket's classes travel as JSON (a worker's series answer) and come
// back the same; a bucket without classes has none in its JSON.
func TestBucketJSON(t *testing.T) {
	b := windows.Bucket{Start: time.Unix(1700000000, 0).UTC(), Step: time.Minute, Total: 3, Endpoints: map[string]uint64{"GET /a": 3},
		Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 2, codecs.Class5xx: 1}}, Final: true}
	raw, err := json.Marshal([]windows.Bucket{b})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"Status":{"GET /a":{"2xx":2,"5xx":1}}`) {
		t.Errorf("JSON %s", raw)
	}
	var back []windows.Bucket
	if err := json.Unmarshal(raw, &back); err != nil || len(back) != 1 || back[0].Status["GET /a"] != b.Status["GET /a"] || back[0].Total != 3 {
		t.Errorf("back %+v, %v", back, err)
	}
	b.Status = nil
	if raw, _ := json.Marshal(b); strings.Contains(string(raw), "Status") {
		t.Errorf("no classes: JSON %s", raw)
	}
}
