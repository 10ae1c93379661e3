package usage

// LastSeenOf exposes lastSeenOf to tests.
var LastSeenOf = lastSeenOf
