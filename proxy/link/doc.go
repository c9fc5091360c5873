// Package link holds the bookkeeping and the decisions of one client's link to its
// server, as plain data and functions: the requests sent and not yet answered (Queue, of
// Expect values), what the server still owes and the transaction status it reported
// (Book), which request a server message answers and whether the client sees it
// (Queue.Answer), what an ErrorResponse does (ErrorRule), whether the link ends at a
// ReadyForQuery (End), and what a request's SQL text does to session state: the reasons
// it pins the client, whether it may release them, the settings it names (ClassifyLead,
// Pin, SetTouch); a client's session settings and their replay on each server it gets:
// the hidden queries that give a server the client's values, the read-back of what a
// request changed and its outcome for the client and the server (Settings, Synced,
// ResetInPlace); the 0A000 retry: what of a request is kept to be sent again (Log)
// and whether it is (PlanRetry); and the messages of statement renaming: the names read out
// of a client's Parse, Bind, Describe and Close (ParseFields, BindFields, TargetFields)
// and the messages sent under pgmux's names or hidden in front (AppendBindAs,
// AppendNoop, ...).
//
// It does no I/O and keeps no state of its own: no sockets, no locks, no goroutines, no
// timers, no logging (TestPurity checks its imports). The caller, package proxy, holds
// these values under its own lock, gathers the facts (the message's type, what the
// session and the server's state say), calls the rule and carries out the step it
// returns: writing or swallowing the message, recording on its statements and the
// server's state, releasing the server. So every rule here is driven by its tests with
// message sequences and tables alone, without a client or PostgreSQL.
//
// Expect and Queue hold three types of the caller's, which this package only stores and
// checks for nil: S, a client statement; F, a rewrite of the server's error for a
// renamed message; D, one statement a DEALLOCATE drops. Book takes them for the Queue
// its methods are given.
package link
