package tablestore

import (
	"bytes"

	"github.com/syndtr/goleveldb/leveldb/iterator"
)

// iterator hides the offset key, like goka's own storage iterator.
type keyIterator struct{ it iterator.Iterator }

func (i *keyIterator) Next() bool {
	for i.it.Next() {
		if !bytes.Equal(i.it.Key(), []byte(offsetKey)) {
			return true
		}
	}
	return false
}

func (i *keyIterator) Seek(key []byte) bool {
	if !i.it.Seek(key) {
		return false
	}
	if bytes.Equal(i.it.Key(), []byte(offsetKey)) {
		return i.Next()
	}
	return true
}

func (i *keyIterator) Err() error             { return i.it.Error() }
func (i *keyIterator) Key() []byte            { return i.it.Key() }
func (i *keyIterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *keyIterator) Release()               { i.it.Release() }
