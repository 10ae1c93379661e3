package usage_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// Apply counts an event once per position: goka replays uncommitted input
// after a crash, and the replay is recognised by its offset.
func ExampleApply() {
	now := time.Date(2025, 1, 1, 12, 0, 30, 0, time.UTC)
	row := &activitypb.ClientUsage{Client: "10.0.0.1"}
	ev := &activitypb.BackendApiActivity{Client: "10.0.0.1", HttpMethod: "GET", Route: "/users/{id}"}
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 41}, windows.Default(), now).Applied)
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 41}, windows.Default(), now).Applied) // the replay
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 42}, windows.Default(), now).Applied)
	fmt.Println(row.GetTotal(), row.GetEndpoints()["GET /users/{id}"].GetCount())
	// Output:
	// true
	// false
	// true
	// 2 2
}

// A bucket closes once the client's stream time passes its end plus the
// grace period; Apply hands it back to be emitted and drops it from the row.
func ExampleApply_close() {
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}, Grace: 10 * time.Second}
	row := &activitypb.ClientUsage{Client: "c"}
	at := func(hms string) *activitypb.BackendApiActivity {
		t, _ := time.Parse(time.TimeOnly, hms)
		return &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a",
			RequestTime: timestamppb.New(time.Date(2025, 1, 1, t.Hour(), t.Minute(), t.Second(), 0, time.UTC))}
	}
	now := time.Date(2025, 1, 1, 13, 0, 0, 0, time.UTC)
	for i, hms := range []string{"12:00:05", "12:00:59", "12:01:09", "12:00:30", "12:01:10", "12:00:40"} {
		r := usage.Apply(row, at(hms), usage.Position{Offset: int64(i)}, w, now)
		for _, b := range r.Closed {
			fmt.Printf("%s closes %s: %d calls\n", hms, time.Unix(b.StartUnix, 0).UTC().Format(time.TimeOnly), b.Total)
		}
		if r.Late > 0 {
			fmt.Printf("%s is late\n", hms)
		}
	}
	// Output:
	// 12:01:10 closes 12:00:00: 3 calls
	// 12:00:40 is late
}
