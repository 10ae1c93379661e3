package api

import "github.com/inarious/inarious/middleware"

// MaxInFlight is the buffer's in-flight bound, for tests.
const MaxInFlight = middleware.MaxInFlight
