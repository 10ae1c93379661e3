// Package integration holds the test suite that runs the inarious binary
// (api and worker processes) against a real Apache Kafka broker. It only
// runs when INARIOUS_KAFKA_BROKERS is set; see README.md in this directory.
package integration
