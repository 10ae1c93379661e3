package codecs

import "github.com/inarious/inarious/codecs/activitypb"

// Activity encodes the events on the Users topic.
type Activity = Proto[activitypb.BackendApiActivity, *activitypb.BackendApiActivity]

// ClientUsage encodes the values of the usage table.
type ClientUsage = Proto[activitypb.ClientUsage, *activitypb.ClientUsage]
