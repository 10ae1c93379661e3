// Package activitypb holds the generated protobuf types of Inarious' events
// and table values. Regenerate with `go generate ./codecs/...`.
package activitypb

//go:generate bash ../../scripts/genproto.sh
