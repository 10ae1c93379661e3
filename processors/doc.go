// Package processors holds Inarious' goka processor groups, one subpackage
// each (goka's examples/3-messaging layout; Faust's agents and tables). A
// component package owns everything about its group: the group name, its
// table and codec, the topics it reads and writes (declared as data, created
// by the composition root), its callback, replay skipping, caches and stats.
// internal/stream builds and supervises its goka processor; views/ holds the
// typed read side of its table.
//
//   - usage: calls per client and endpoint since the client was first seen.
package processors
