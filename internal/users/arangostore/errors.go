package arangostore

import (
	"fmt"
	"net/http"

	"github.com/arangodb/go-driver/v2/arangodb/shared"

	"github.com/inarious/inarious/internal/users"
)

// mapError turns driver errors into domain errors; anything else is wrapped
// so it stays visible in logs. Order matters: the driver's own
// IsPreconditionFailed also matches unique-constraint errors, so the
// duplicate check comes first and we test codes directly.
func mapError(err error) error {
	switch {
	case err == nil:
		return nil
	case shared.IsArangoErrorWithErrorNum(err, shared.ErrArangoUniqueConstraintViolated):
		return users.ErrDuplicateEmail
	case shared.IsArangoErrorWithCode(err, http.StatusPreconditionFailed):
		return users.ErrStaleRevision
	case shared.IsArangoErrorWithErrorNum(err, shared.ErrArangoDocumentNotFound, shared.ErrArangoDocumentKeyBad):
		return users.ErrNotFound
	case shared.IsArangoErrorWithCode(err, http.StatusNotFound) && !shared.IsArangoErrorWithErrorNum(err,
		shared.ErrArangoDataSourceNotFound, shared.ErrArangoDatabaseNotFound):
		// A 404 without a document errorNum (e.g. HEAD) still means "no such user";
		// a missing collection or database is a deployment fault, not a 404.
		return users.ErrNotFound
	}
	return fmt.Errorf("arangostore: %w", err)
}

// isWriteConflict reports RocksDB write-write conflicts (errorNum 1200 without
// a 412, which is how a failed If-Match is reported), which are retryable.
func isWriteConflict(err error) bool {
	return shared.IsArangoErrorWithErrorNum(err, shared.ErrArangoConflict) &&
		!shared.IsArangoErrorWithCode(err, http.StatusPreconditionFailed)
}
