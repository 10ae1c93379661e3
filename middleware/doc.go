// Package middleware sends a Go API's calls to Inarious: an http.Handler
// wrapper that turns every request into an activity event (client, route
// template, method, status, duration, service) and hands it, without ever
// making the request wait, to a bounded buffer that delivers it either
// straight to Kafka (NewKafkaTransport) or to an Inarious server's
// POST /events (NewHTTPTransport). With WithQuotas it also enforces the
// quota policies kept in Inarious, answering over-quota calls with 429 and
// the RateLimit headers. Inarious' own API counts its calls with it. See
// the README, "From a Go service: the middleware".
package middleware
