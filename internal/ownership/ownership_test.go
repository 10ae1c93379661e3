package ownership

import (
	"testing"

	"github.com/IBM/sarama"
)

func TestUserDataRoundTrip(t *testing.T) {
	if got, ok := QueryAddr(UserData("10.0.0.7:8081")); !ok || got != "10.0.0.7:8081" {
		t.Fatalf("QueryAddr(UserData(addr)) = %q, %v", got, ok)
	}
	// Another program's user data, or none, advertises nothing.
	for _, ud := range [][]byte{nil, []byte(`{"query":"x:1"}`), []byte("inarious/v1:not json"), UserData("")} {
		if got, ok := QueryAddr(ud); ok {
			t.Errorf("QueryAddr(%q) = %q, want none", ud, got)
		}
	}
}

// member encodes a member as the coordinator describes it.
func member(t *testing.T, id, addr string, parts ...int32) *sarama.GroupMemberDescription {
	t.Helper()
	var ud []byte
	if addr != "" {
		ud = UserData(addr)
	}
	meta, err := encodeMeta(&sarama.ConsumerGroupMemberMetadata{Topics: []string{"Users"}, UserData: ud})
	if err != nil {
		t.Fatal(err)
	}
	as, err := encodeAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: map[string][]int32{"Users": parts, "usage-loop": parts}})
	if err != nil {
		t.Fatal(err)
	}
	return &sarama.GroupMemberDescription{MemberId: id, ClientId: id, MemberMetadata: meta, MemberAssignment: as}
}

func TestFromDescription(t *testing.T) {
	desc := &sarama.GroupDescription{State: "Stable", Members: map[string]*sarama.GroupMemberDescription{
		"a": member(t, "a", "127.0.0.1:1", 0, 1),
		"b": member(t, "b", "127.0.0.1:2", 2),
	}}
	m, err := FromDescription(desc, "Users", 4)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := m.Owner(2); !ok || o.Addr != "127.0.0.1:2" || o.MemberID != "b" {
		t.Errorf("owner of 2 = %+v, %v", o, ok)
	}
	if _, ok := m.Owner(3); ok || m.Covered() {
		t.Errorf("partition 3 is unassigned, yet owned or covered: %+v", m)
	}
	desc.Members["c"] = member(t, "c", "", 3)
	if m, _ = FromDescription(desc, "Users", 4); m.Covered() {
		t.Error("covered although partition 3's owner advertises no address")
	}
	desc.Members["c"] = member(t, "c", "127.0.0.1:3", 3)
	if m, _ = FromDescription(desc, "Users", 4); !m.Covered() {
		t.Errorf("not covered: %+v", m)
	}
	// While rebalancing nobody owns anything.
	desc.State = "PreparingRebalance"
	if m, _ = FromDescription(desc, "Users", 4); len(m.Owners) != 0 || m.Covered() {
		t.Errorf("owners during a rebalance: %+v", m.Owners)
	}
	desc.State = "Stable"
	desc.Members["d"] = member(t, "d", "127.0.0.1:4", 3)
	if _, err := FromDescription(desc, "Users", 4); err == nil {
		t.Error("a partition assigned twice gave no error")
	}
}
