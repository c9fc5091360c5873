package link

// The caller's types, as the tests stand them in: a client statement (its client name),
// a rewrite of an error, a DEALLOCATE's drop. The link only stores them and checks them
// for nil.
type (
	stmt struct {
		name string
		sql  bool // prepared by SQL PREPARE (PlanRetry does not replay it)
	}
	fix  struct{}
	drop struct{}
)

type expect = Expect[stmt, fix, drop]

type errFacts = ErrFacts[stmt, fix, drop]

type book = Book[stmt, fix, drop]
