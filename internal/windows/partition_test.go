package windows_test

import (
	"testing"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/windows"
)

// A windowed key is placed by its client: in the partition of Users (and of
// the usage table) that holds the client, whatever its start.
func TestWindowedKeyLandsInItsClientsPartition(t *testing.T) {
	clients := []string{"198.51.100.7", "c", "a\x00b", "client-with-a-rather-long-name", ""}
	for _, n := range []int{1, 4, 6, 8, 64} {
		for _, c := range clients {
			for _, start := range []int64{0, 1700000000, 1700000060, 999999999999} {
				key := windows.Key(c, start)
				h := windows.Hasher()
				_, _ = h.Write([]byte(key))
				if got, want := int32(h.Sum32())%int32(n), kafka.PartitionOf(c, n); got != want {
					t.Fatalf("%q at %d, %d partitions: partition %d, the client's is %d", c, start, n, got, want)
				}
			}
		}
	}
	// The whole key would place most of these elsewhere: the hasher matters.
	moved := 0
	for _, c := range clients {
		if kafka.PartitionOf(windows.Key(c, 1700000000), 64) != kafka.PartitionOf(c, 64) {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no key's whole-key partition differs from its client's: the test proves nothing")
	}
}

func TestPartitionKeyLeavesOtherKeysWhole(t *testing.T) {
	for _, key := range []string{"198.51.100.7", "", "x\x00123", "x\x0012345678901a", "x\x01123456789012"} {
		if got := string(windows.PartitionKey([]byte(key))); got != key {
			t.Errorf("PartitionKey(%q) = %q, want the key itself", key, got)
		}
	}
	if got := string(windows.PartitionKey([]byte(windows.Key("a\x00b", 60)))); got != "a\x00b" {
		t.Errorf("client with a NUL: %q", got)
	}
	if !windows.IsTopic(windows.Topic(60e9)) || windows.IsTopic("usage-table") {
		t.Error("IsTopic")
	}
}
