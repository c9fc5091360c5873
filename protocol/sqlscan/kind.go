package sqlscan

import "strconv"

// Kind classifies a statement by the session state it may touch.
type Kind uint8

// Statement kinds. Anything not listed, including malformed forms of the statements below
// that the server would reject, is KindOther.
const (
	KindOther         Kind = iota
	KindBegin              // BEGIN, START TRANSACTION
	KindCommit             // COMMIT, END (COMMIT PREPARED is KindOther)
	KindRollback           // ROLLBACK, ABORT (ROLLBACK TO SAVEPOINT and ROLLBACK PREPARED are KindOther)
	KindSet                // SET [SESSION] name {TO|=} value, SET TIME ZONE, SET NAMES, SET SCHEMA, SET XML OPTION
	KindSetLocal           // SET LOCAL ..., SET TRANSACTION ...
	KindReset              // RESET name, RESET ROLE, RESET SESSION AUTHORIZATION, RESET TIME ZONE
	KindResetAll           // RESET ALL
	KindPrepare            // PREPARE name [(types)] AS statement
	KindExecute            // EXECUTE name [(args)]
	KindDeallocate         // DEALLOCATE [PREPARE] name
	KindDeallocateAll      // DEALLOCATE [PREPARE] ALL
	KindDiscardAll         // DISCARD ALL
	KindDiscard            // DISCARD PLANS|SEQUENCES|TEMP|TEMPORARY
	KindListen             // LISTEN channel
	KindUnlisten           // UNLISTEN channel
	KindUnlistenAll        // UNLISTEN *
	KindNotify             // NOTIFY channel [, payload]
	KindDeclareHold        // DECLARE name ... CURSOR WITH HOLD FOR ...
	KindCreateTemp         // CREATE TEMP TABLE|VIEW|SEQUENCE, CREATE ... pg_temp.name, SELECT ... INTO TEMP
	KindSetRole            // SET [SESSION] ROLE, SET [SESSION] SESSION AUTHORIZATION
	KindLoad               // LOAD 'library'
	KindClose              // CLOSE cursor, CLOSE ALL
	// KindSetCharacteristics is SET SESSION CHARACTERISTICS AS TRANSACTION modes: it sets
	// default_transaction_isolation, _read_only and _deferrable for the session.
	KindSetCharacteristics
)

var kindNames = [...]string{
	KindOther:         "Other",
	KindBegin:         "Begin",
	KindCommit:        "Commit",
	KindRollback:      "Rollback",
	KindSet:           "Set",
	KindSetLocal:      "SetLocal",
	KindReset:         "Reset",
	KindResetAll:      "ResetAll",
	KindPrepare:       "Prepare",
	KindExecute:       "Execute",
	KindDeallocate:    "Deallocate",
	KindDeallocateAll: "DeallocateAll",
	KindDiscardAll:    "DiscardAll",
	KindDiscard:       "Discard",
	KindListen:        "Listen",
	KindUnlisten:      "Unlisten",
	KindUnlistenAll:   "UnlistenAll",
	KindNotify:        "Notify",
	KindDeclareHold:   "DeclareHold",
	KindCreateTemp:    "CreateTemp",
	KindSetRole:       "SetRole",
	KindLoad:          "Load",
	KindClose:         "Close",

	KindSetCharacteristics: "SetCharacteristics",
}

// String returns the kind's name, e.g. "SetLocal".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Statement is one classified statement. Only the fields that apply to Kind are set.
type Statement struct {
	Kind Kind

	// Name is the SET/RESET parameter (SET TIME ZONE is "timezone", SET NAMES is
	// "client_encoding", SET SCHEMA is "search_path", SET ROLE is "role", SET SESSION
	// AUTHORIZATION is "session_authorization", dotted names joined with "."), the
	// PREPARE/EXECUTE/DEALLOCATE statement name, the LISTEN/UNLISTEN/NOTIFY channel, the
	// DECLARE or CLOSE cursor, the CREATE TEMP object (unqualified), or the DISCARD target
	// ("plans", "sequences", "temp", "temporary"). Identifier rules apply: lowercased unless
	// double-quoted, truncated to 63 bytes.
	Name string

	// Value is raw text as written, from the first token after the keyword through the end
	// of the statement: the SET value (`'UTC'`, `public, "My Schema"`; DEFAULT in any case
	// becomes "DEFAULT"; so do SET NAMES with no value and SET TIME ZONE LOCAL), the SET
	// TRANSACTION modes, the NOTIFY payload, the LOAD library literal, or "ALL" for CLOSE
	// ALL.
	Value string

	// Text is the statement itself: a slice of the input from its first token to its last,
	// without the ';' and without leading or trailing whitespace and comments.
	Text string

	// AdvisoryLock counts calls of pg_advisory_lock, pg_try_advisory_lock and their _shared
	// forms (unqualified or pg_catalog-qualified) anywhere in the statement, including
	// calls in PL/pgSQL bodies of DO blocks. It counts call sites, not executions (a call
	// in a SELECT over many rows counts once). The _xact_ variants are not counted, nor are
	// calls hidden in EXECUTE strings (the statements in Do count those of literal ones)
	// or in functions the statement calls.
	AdvisoryLock int
	// AdvisoryUnlock counts pg_advisory_unlock and pg_advisory_unlock_shared calls.
	AdvisoryUnlock int
	// AdvisoryUnlockAll is set by a pg_advisory_unlock_all() call.
	AdvisoryUnlockAll bool

	// PrepareBody is the text after AS in PREPARE.
	PrepareBody string
	// ParamTypes are the PREPARE parameter types as written, trimmed.
	ParamTypes []string

	// Do is set for a well-formed DO statement: what its body runs, as far as pgmux can
	// tell (see Block). All walks the nested statements.
	Do *Block

	// SetConfigs are the set_config calls anywhere in the statement (outside DO bodies),
	// in order.
	SetConfigs []SetConfig
}
