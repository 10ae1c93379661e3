package api

// MaxInFlight is maxInFlight for tests.
const MaxInFlight = maxInFlight
