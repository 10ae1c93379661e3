package tablestore

// SetTickHook makes the flusher call f inside each tick, before its flush.
// Call it before Open.
func (s *Store) SetTickHook(f func()) { s.tickHook = f }

// FailWrites makes every later LevelDB write fail, as a full disk does,
// while reads go on.
func (s *Store) FailWrites() error { return s.db.SetReadOnly() }
