// Package archtest checks the module's layout rather than any behaviour:
// which packages may depend on which, and that the README's table of
// packages matches the packages there are. It has no code of its own.
package archtest
