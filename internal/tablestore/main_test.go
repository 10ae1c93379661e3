package tablestore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// mpoolDrain outlives Close by design of that version (it exits on a timer).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}
