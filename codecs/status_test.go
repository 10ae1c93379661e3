package codecs_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
)

func TestStatusClass(t *testing.T) {
	for _, c := range []struct {
		status int32
		class  int
		ok     bool
	}{
		{0, 0, false}, // no status sent: no class
		{100, codecs.Class1xx, true},
		{200, codecs.Class2xx, true},
		{204, codecs.Class2xx, true},
		{301, codecs.Class3xx, true},
		{404, codecs.Class4xx, true},
		{499, codecs.Class4xx, true},
		{503, codecs.Class5xx, true},
		{599, codecs.Class5xx, true},
		{600, codecs.ClassOther, true},
		{99, codecs.ClassOther, true},
		{-1, codecs.ClassOther, true},
	} {
		class, ok := codecs.StatusClass(c.status)
		if class != c.class || ok != c.ok {
			t.Errorf("StatusClass(%d) = %d, %v; want %d, %v", c.status, class, ok, c.class, c.ok)
		}
	}
}

func TestStatusCountsJSON(t *testing.T) {
	s := codecs.StatusCounts{codecs.Class2xx: 12, codecs.Class4xx: 1, codecs.ClassOther: 2}
	b, err := json.Marshal(s)
	if err != nil || string(b) != `{"2xx":12,"4xx":1,"other":2}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back codecs.StatusCounts
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("Unmarshal = %v, %v; want %v", back, err, s)
	}
	if err := json.Unmarshal([]byte(`{"2xx":1,"7xx":3}`), &back); err != nil || back != (codecs.StatusCounts{codecs.Class2xx: 1}) {
		t.Errorf("unknown class: %v, %v", back, err)
	}
	if b, _ := json.Marshal(codecs.StatusCounts{}); string(b) != `{}` {
		t.Errorf("empty = %s", b)
	}
	if p := s.Packed(); len(p) != codecs.NumStatusClasses || codecs.StatusCountsOf(p) != s {
		t.Errorf("Packed = %v", p)
	}
	if p := (codecs.StatusCounts{codecs.Class2xx: 3}).Packed(); len(p) != 2 {
		t.Errorf("Packed keeps trailing zeros: %v", p)
	}
}

// A value encoded before classes were kept decodes with none, and its JSON
// has no status anywhere.
func TestUsageDocWithoutClasses(t *testing.T) {
	// An EndpointUsage of the old schema: count 5, window_id 1.
	var old []byte
	old = protowire.AppendTag(old, 1, protowire.VarintType)
	old = protowire.AppendVarint(old, 5)
	old = protowire.AppendTag(old, 3, protowire.VarintType)
	old = protowire.AppendVarint(old, 1)
	var row []byte
	row = protowire.AppendTag(row, 1, protowire.BytesType)
	row = protowire.AppendString(row, "c")
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "GET /a")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, old)
	row = protowire.AppendTag(row, 2, protowire.BytesType)
	row = protowire.AppendBytes(row, entry)
	row = protowire.AppendTag(row, 3, protowire.VarintType)
	row = protowire.AppendVarint(row, 5)
	v, err := codecs.ClientUsage{}.Decode(row)
	if err != nil {
		t.Fatal(err)
	}
	u := v.(*activitypb.ClientUsage)
	if ep := u.GetEndpoints()["GET /a"]; ep.GetCount() != 5 || len(ep.GetStatusClasses()) != 0 {
		t.Fatalf("decoded %v", u)
	}
	b, _ := json.Marshal(codecs.UsageDocOf(u))
	if want := `{"client":"c","total":5,"endpoints":{"GET /a":{"service":"default","count":5}}}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestUsageDocStatus(t *testing.T) {
	u := &activitypb.ClientUsage{Client: "c", Total: 6, Endpoints: map[string]*activitypb.EndpointUsage{
		"GET /a":  {Count: 4, StatusClasses: []uint64{0, 3, 0, 1}},
		"POST /b": {Count: 2, StatusClasses: []uint64{0, 0, 0, 0, 1}}, // one call without a status
	}}
	doc := codecs.UsageDocOf(u)
	if want := (codecs.StatusCounts{codecs.Class2xx: 3, codecs.Class4xx: 1, codecs.Class5xx: 1}); doc.Status != want {
		t.Errorf("client status %v, want %v", doc.Status, want)
	}
	b, _ := json.Marshal(doc.Endpoints["GET /a"])
	if want := `{"service":"default","count":4,"status":{"2xx":3,"4xx":1}}`; string(b) != want {
		t.Errorf("endpoint JSON %s, want %s", b, want)
	}
}

func TestStatusMapRoundTrip(t *testing.T) {
	m := map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 2}, "GET /b": {}}
	wc := &activitypb.WindowCounts{Status: codecs.StatusMapProto(m)}
	if len(wc.GetStatus()) != 1 {
		t.Fatalf("proto %v: endpoints without calls kept", wc.GetStatus())
	}
	back := codecs.StatusMapOf(wc)
	if len(back) != 1 || back["GET /a"] != m["GET /a"] {
		t.Errorf("back %v", back)
	}
	if codecs.StatusMapOf(&activitypb.WindowCounts{}) != nil || codecs.StatusMapProto(nil) != nil {
		t.Error("no classes should be nil")
	}
}
