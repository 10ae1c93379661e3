package ownership

import "github.com/IBM/sarama"

// encodeMeta and encodeAssignment encode as a member's JoinGroup and the
// leader's SyncGroup do (sarama exports no encoder); a describe answer
// carries these bytes.
func encodeMeta(m *sarama.ConsumerGroupMemberMetadata) ([]byte, error) {
	req := &sarama.JoinGroupRequest{}
	if err := req.AddGroupProtocolMetadata("copartition", m); err != nil {
		return nil, err
	}
	return req.OrderedGroupProtocols[0].Metadata, nil
}

func encodeAssignment(a *sarama.ConsumerGroupMemberAssignment) ([]byte, error) {
	req := &sarama.SyncGroupRequest{}
	if err := req.AddGroupAssignmentMember("m", a); err != nil {
		return nil, err
	}
	return req.GroupAssignments[0].Assignment, nil
}
