package link

// Expect is one request on a linked server whose answer the relay must recognise: a
// client message, or one pgmux slipped in front of it. The server answers requests in
// order, so a FIFO of them (Queue) tells, for every server message, which request it
// belongs to and whether the client may see it.
//
// Owners: an Expect is a value of the Queue that holds it, guarded by whatever guards
// the queue (in package proxy, Session.mu); the statements it points to (Def, Reg)
// follow the caller's rules for them (proxy's stmtDef).
type Expect[S, F, D any] struct {
	Kind  byte   // the request's message type: P, B, D, E, C, S, Q or F
	Hide  bool   // pgmux's own request: its answers are swallowed
	Noop  bool   // for P: the empty statement that answers a Parse found in the server's cache
	Stmt  string // for P: the server statement it creates; for hidden C: the one it closes
	Stale bool   // for hidden C: it closes a stale copy before preparing the statement anew
	// Check marks pgmux's session-state query: its one row tells whether a pinned
	// client can go back to transaction pooling.
	Check bool
	// Seq: for a check, Session.pinSeq when it was sent; for a SetRead, the settings'
	// generation; for the client's Parse of the unnamed statement, its number (proxy's
	// unnamedStmt.gen), reported when the Parse fails (ErrStep.UnnamedFailed).
	Seq uint32
	// For a client's Bind or Describe of a named statement: the statement, and where the
	// message starts in its link's request log (proxy/retry.go).
	Off int32
	Def *S
	// Reg: for the client's Parse (or SQL PREPARE) of a statement, the statement, marked
	// failed when the server reports an error for it or skips it.
	Reg *S
	// Fix rewrites the server's error for a renamed message (proxy/errfix.go).
	Fix *F
	// ShowErr: for pgmux's hidden PREPARE of a SQL statement before the client's EXECUTE,
	// its error goes to the client in place of the EXECUTE's (proxy/sqlprep.go).
	ShowErr bool
	// ParamsSent: for a retried Describe of a statement, the client already has its
	// ParameterDescription (PostgreSQL sends it before checking the result type).
	ParamsSent bool
	// Anon: for a client's Bind or Describe of Def, the client named the unnamed
	// statement (served from the statement cache): errors name "" as PostgreSQL's do.
	Anon bool
	// Fake: a client's Parse pgmux answers itself (proxy/unnamed.go); its ParseComplete
	// goes to the client as soon as every request before it is answered.
	Fake bool
	// Fresh: a Bind or Describe of the client's unnamed statement served from the cache
	// that the client parsed in the same request (proxy/prepared.go parsedHere).
	Fresh bool
	// Probe: pgmux's check, in a request of its own at link time, of Reg, a statement
	// whose Parse it answered itself (proxy/deferred.go probeDeferred): its error only
	// tells pgmux the statement was never the client's.
	Probe bool
	// Prep: for a request that prepares Stmt on the server (a Parse, or a PREPARE sent
	// as a Query or executed), the preparation's number in the server's statement cache
	// (proxy/stmtcache.go): its answer confirms the statement there, its failure forgets
	// it.
	Prep uint32
	// Clear: for the client's Query with DISCARD ALL or DEALLOCATE ALL, its number among
	// those the session sent (proxy/stmtclear.go): when the server completes that
	// command, the client's statements registered before it are gone.
	Clear uint32
	// Hold: pgmux's preparation of a client statement before a Query (proxy/sqlmulti.go):
	// its error is held, and replaces the 26000 the client's EXECUTE then gets.
	Hold bool
	// Settles: a hidden Sync after the client's request; the link may end at its
	// ReadyForQuery.
	Settles bool
	// Skipped: the client's Query or FunctionCall sent after its request's error was
	// read, before the Sync: the server skips it and answers nothing, not even a
	// ReadyForQuery (Book.SentClient). It is retired with the Sync, as skipped.
	Skipped bool
	// Drops: for a client request with DEALLOCATE of names, one per such statement in
	// the order the server runs them (proxy/stmtclear.go).
	Drops []D
	// Setting marks pgmux's hidden settings queries (proxy/settings_link.go): SetSync,
	// SetSyncReset, SetReapply or SetRead; for SetSync and SetSyncReset, Stmt names the
	// setting and Val is the value SetSync gives it.
	Setting uint8
	Val     string
	// HideCC: for the client's Query with pgmux's re-sets in it
	// (proxy/settings_inplace.go), bit i marks its i-th CommandComplete as theirs; CCSeen
	// counts those received.
	HideCC uint64
	CCSeen uint8
}

// Hidden queries of settings, in Expect.Setting.
const (
	SetSync      uint8 = iota + 1 // set_config of one setting at link time (Expect.Stmt names it)
	SetSyncReset                  // RESET of one setting at link time (Expect.Stmt names it)
	SetReapply                    // startup values set again after a reset
	SetRead                       // the read-back of touched settings (Expect.Seq: the settings' generation)
)
