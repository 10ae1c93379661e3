package activitypb

import _ "embed"

// Proto is the text of activity.proto, the source the types in this package
// are generated from; codecs/confluent registers it in a schema registry.
//
//go:embed activity.proto
var Proto string
