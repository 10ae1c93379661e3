package codecs

import (
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs/activitypb"
)

// ActivityTopic carries one BackendApiActivity per API call. It keeps the
// original design's name, so its producers and consumers keep working.
const ActivityTopic goka.Stream = "Users"

// Activity encodes the events on the Users topic.
type Activity = Proto[activitypb.BackendApiActivity, *activitypb.BackendApiActivity]

// ClientUsage encodes the values of the usage table.
type ClientUsage = Proto[activitypb.ClientUsage, *activitypb.ClientUsage]

// Rekeyed encodes the records of the usage group's loopback topic.
type Rekeyed = Proto[activitypb.Rekeyed, *activitypb.Rekeyed]

// WindowCounts encodes the values of the windowed topics (closed buckets).
type WindowCounts = Proto[activitypb.WindowCounts, *activitypb.WindowCounts]

// Expire encodes the records of the usage group's control topic.
type Expire = Proto[activitypb.Expire, *activitypb.Expire]

// ClientOf is the identity an event is counted under: the authenticated
// client when there is one, else the caller's host.
func ClientOf(ev *activitypb.BackendApiActivity) string {
	if c := ev.GetClient(); c != "" {
		return c
	}
	return ev.GetClientHost()
}
