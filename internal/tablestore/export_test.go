package tablestore

// SetTickHook makes the flusher call f inside each tick, before its flush.
// Call it before Open.
func (s *Store) SetTickHook(f func()) { s.tickHook = f }
