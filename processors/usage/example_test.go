package usage_test

import (
	"fmt"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/processors/usage"
)

// Apply counts an event once per position: goka replays uncommitted input
// after a crash, and the replay is recognised by its offset.
func ExampleApply() {
	row := &activitypb.ClientUsage{Client: "10.0.0.1"}
	ev := &activitypb.BackendApiActivity{Client: "10.0.0.1", HttpMethod: "GET", Route: "/users/{id}"}
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 41}))
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 41})) // the replay
	fmt.Println(usage.Apply(row, ev, usage.Position{Partition: 3, Offset: 42}))
	fmt.Println(row.GetTotal(), row.GetEndpoints()["GET /users/{id}"].GetCount())
	// Output:
	// true
	// false
	// true
	// 2 2
}
