package testutil

import (
	"net"
	"testing"
)

// FreePort is a loopback TCP port nothing listened on a moment ago, for a
// server that takes its address as configuration.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
