package codecs

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of activitypb.ClientUsage and google.protobuf.Timestamp.
const (
	fieldTotal    = 3
	fieldLastSeen = 5
	fieldSeconds  = 1
	fieldNanos    = 2
)

var errMalformedUsage = errors.New("codecs: malformed ClientUsage")

// UsageTotals reads total and last_seen (Unix ns, 0 if unset) from an
// encoded ClientUsage without decoding the rest. The index needs only these,
// and skipping the endpoint and offset maps makes recovery of a large table
// several times cheaper than a full decode.
func UsageTotals(b []byte) (total uint64, lastSeen int64, err error) {
	var secs, nanos int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, errMalformedUsage
		}
		b = b[n:]
		switch {
		case num == fieldTotal && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, errMalformedUsage
			}
			total, b = v, b[n:]
		case num == fieldLastSeen && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, 0, errMalformedUsage
			}
			b = b[n:]
			// A repeated message field merges: later fields win.
			if secs, nanos, err = parseTimestamp(m, secs, nanos); err != nil {
				return 0, 0, err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, errMalformedUsage
			}
			b = b[n:]
		}
	}
	if secs != 0 || nanos != 0 {
		lastSeen = secs*1e9 + nanos
	}
	return total, lastSeen, nil
}

func parseTimestamp(b []byte, secs, nanos int64) (int64, int64, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, errMalformedUsage
		}
		b = b[n:]
		if (num == fieldSeconds || num == fieldNanos) && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, errMalformedUsage
			}
			b = b[n:]
			if num == fieldSeconds {
				secs = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, 0, errMalformedUsage
		}
		b = b[n:]
	}
	return secs, nanos, nil
}
