// Package proxy is the client-facing side of pgmux and its composition root: listeners,
// client sessions (startup, TLS, authentication, relaying), the choice of pool for each
// client, cancel routing, reload and graceful shutdown. Server connections themselves
// belong to package pool.
//
// The parts that need only a narrow interface to sessions and the server are packages of
// their own, with tests that drive them without a client or PostgreSQL:
// proxy/link (the link's protocol rules and bookkeeping, without I/O or locks: the
// response queue, link.Book, the error and release rules; a session holds them under
// its mu), proxy/console (the admin console's language; the server is its Backend),
// proxy/listenmux (LISTEN multiplexing; a session is its Subscriber), proxy/metrics
// (Prometheus metrics; the server's snapshots are its Source), proxy/hba
// (auth_hba_file's rules) and proxy/evloop (the client loops' driver: an epoll set, its
// eventfd and inbox; the loop is its Handler).
//
// # Where things are handled
//
// Each entry names a file and a function in it, as relay.go:Session.dispatch (a method
// as Type.Method; a file outside this package by its path from the module root). TestDocMap checks that every function named here exists
// and that every message type the relay accepts is listed, so keep it in step with the
// code.
//
// A client connection, from its first byte:
//
//	accept, one goroutine per new client      server.go:Server.accept, accept_linux.go:rawListener.Accept, server.go:Server.serveConn
//	client_loop: the login on a loop          loginloop_linux.go:Server.loginOnLoop, loginloop_linux.go:parker.stepLogin, loginloop_linux.go:Session.runLogin
//	its coroutine, kept for the next login    loginworker_linux.go:parker.takeWorker, loginworker_linux.go:parker.putWorker
//	a login's wait off the loop (offload)     loginloop_linux.go:Session.offload, session.go:Session.poolReady
//	SSLRequest, GSSENCRequest                 session.go:Session.negotiate, tls.go:Session.startTLS
//	CancelRequest                             session.go:Session.negotiate -> server.go:Server.cancel, cancelwait.go:Session.cancelWait
//	StartupMessage                            session.go:Session.login, params.go:Session.startupParams
//	replication=database/true: own server     replication.go:Session.loginReplication, pool/dedicated.go:Pool.Dedicated
//	replication client's bytes, unread        replication.go:Session.replicate, replication.go:Session.pumpReplication
//	pool for (database, user)                 pools.go:pools.get
//	the admin console (pgbouncer/pgmux db)    admin.go:Session.consoleLogin, admin.go:Session.adminLoop
//	client authentication                     auth.go:Session.authenticate, hba.go:Session.authenticateHBA
//	'p' password, SASL responses              auth.go:Session.readPassword, auth.go:Session.readAuth, auth.go:Session.authSCRAM
//	auth_query                                authquery.go:Server.authQueryCred, authquery.go:authQueryLessee.Pump
//	the relay loop (client messages)          relay.go:Session.relay, relay.go:Session.next
//	idle client parked without a goroutine    park_linux.go:parker.park, loop_linux.go:parker.Event, detach_linux.go:Session.resumeOnLoop, session.go:Session.resume
//	client_loop: the loop's driver            proxy/evloop/loop_linux.go:Loop.Run, loop_linux.go:parker.Event, loop_linux.go:parker.Posted
//	client_loop: requests read on a loop      clientloop.go:Session.serveLoop, clientloop.go:Session.runLoop, park_linux.go:newLoops
//	client_loop: answers relayed on a loop    loop_linux.go:parker.serverEvent, clientloop_server.go:Session.relayBatch
//	client_idle_timeout, query_timeout, ...   relay.go:Session.kickIfIdle, timeouts.go:Session.timerFired
//
// Frontend messages (client to server), after relay.go:Session.relay:
//
//	every type: pin / lease / forward         relay.go:Session.dispatch -> relay.go:Session.forwardClient
//	pin or unpin decision (transaction mode)  sticky.go:Session.stickyNeed, proxy/link/pin.go:ClassifyLead (no I/O)
//	lease a server, link it                   relay.go:Session.serverFor, relay.go:Session.lease
//	a waiting client that left                gone.go:Server.dropGoneWaiters, gone.go:Session.leftWhileWaiting, clientloop.go:Session.leftWhileQueued
//	answers expected for what is sent         relay.go:Session.account, proxy/link/book.go:Book.SentClient, proxy/link/queue.go:Queue.Push, respq.go:respQueue.push (pgmux's own)
//	'Q' Query                                 query.go:Session.forwardQuery, query.go:Session.inspectQuery
//	'Q' LISTEN / UNLISTEN shared              listen.go:Session.listenLocally, listen_do.go:Session.listenShared
//	UNLISTEN, DISCARD ALL sent to a server    listen_tx.go:Session.unlistenQueued, listen_tx.go:Session.trackUnlisten, listen_tx.go:Session.unlistenCC
//	'Q' PREPARE / EXECUTE / DEALLOCATE (SQL)  sqlprep.go:Session.sqlPrepared
//	'Q' of several statements naming them     sqlmulti.go:Session.namesIn, sqlmulti.go:Session.sqlByName
//	'Q' DISCARD ALL / DEALLOCATE ALL          stmtclear.go:Session.noteClear
//	'E' of DISCARD ALL / DEALLOCATE [ALL]     stmtclear_ext.go:Session.notePortal, stmtclear_ext.go:Session.executeClear
//	'P' Parse                                 prepared.go:Session.rewriteParse, unnamed.go:Session.parseUnnamed
//	'P' served from the cache (no I/O)        proxy/link/unnamed.go:Sketch.Seen, proxy/link/unnamed.go:AnswerParse
//	'P' of SQL EXECUTE of a client statement  sqlexec_ext.go:Session.execOf, sqlexec_ext.go:Session.execCurrent
//	'P' 'E' of SQL PREPARE (no pin)           sqlprep_ext.go:Session.prepOf, sqlprep_ext.go:Session.executePrep
//	'B' Bind                                  prepared.go:Session.rewriteBind
//	'B' in a failed transaction               failedtx.go:Session.failedBind, failedtx.go:Session.failedDescribe
//	'D' Describe, 'C' Close                   prepared.go:Session.rewriteDescribeClose
//	a server's statement cache (no I/O)       proxy/link/stmtcache.go:StmtCache.Lookup, proxy/link/stmtcache.go:StmtCache.Prepare, proxy/link/stmtcache.go:StmtCache.Find; its figures: stmtcache.go:stmtCache.prepare
//	'P' 'C' 'H' answered without a server     deferred.go:Session.deferLocal
//	'E' Execute, 'S' Sync, 'H' Flush          relay.go:Session.forwardClient (kept for a retry: proxy/link/retry.go:Log.Add)
//	'F' FunctionCall, 'd' 'c' 'f' COPY data   relay.go:Session.forwardClient (forwarded raw)
//	'X' Terminate                             relay.go:Session.relay
//	a message refused (no server)             relay.go:Session.refuse, relay.go:Session.skipUntilSync
//	session settings replayed on a server     settings_link.go:Session.syncSettings, settings_link.go:Session.settingsAfter, proxy/link/settings.go:Settings.SyncSQL (no I/O), proxy/link/settings.go:Settings.Commit (no I/O)
//	startup values set again after a RESET    settings_inplace.go:Session.resetInPlace (in the Query: proxy/link/settings.go:ResetInPlace), settings_link.go:Session.settingsAfter, settings_link.go:Session.awaitReapply
//	reads routed to a standby                 replica.go:Session.routeRead, replica.go:Session.acquireReplica
//	after a read-only transaction's end       replica_tx.go:Session.roTxRequestFits, replica.go:Session.awaitReplicaUnlink
//	inside a standby's read-only transaction  replica_move.go:Session.inStandbyTx, replica_move.go:Session.moveTx, replica_split.go:Session.splitAtEnd, replica_split.go:Session.splitBatchAtEnd, replica_split.go:Session.splitInRequest
//	a server lost mid-transaction (failover)  failover.go:Session.recoverLink, failover.go:Session.answerAborted
//
// Backend messages (server to client), on the server connection's reader goroutine
// (pool/conn.go:Conn.run calls the lessee's Pump while leased) or, for a server a client
// loop reads (it has no goroutine then: pool/loopread.go:Conn.LoopPark), on that loop
// (loop_linux.go:parker.serverEvent). Which request each
// answers is decided without I/O in package proxy/link (table tests and FuzzRespQueue drive
// it with message sequences):
//
//	every type                                relay.go:Session.Pump
//	'Z' ReadyForQuery: release, unpin         relay.go:Session.onReady, relay.go:Session.settle, pool/conn.go:Conn.Release
//	'Z' the release rule (no I/O)             proxy/link/end.go:End
//	'Z' retires its request                   relay.go:Session.retireReady -> proxy/link/match.go:Queue.RetireReady, proxy/link/book.go:Book.ReadyAnswered
//	'E' ErrorResponse, 0A000 retry            relay.go:Session.onError, retry.go:Session.planRetry (proxy/link/retry.go:PlanRetry), relay.go:Session.skipToSync
//	'E' what the error does (no I/O)          proxy/link/errrule.go:ErrorRule
//	'E' skips to the Sync                     proxy/link/match.go:ErrorSkipsToSync, proxy/link/book.go:Book.ErrorSkips, proxy/link/match.go:Queue.SkipToSync
//	'S' ParameterStatus                       params.go:Session.onParameterStatus
//	'A' NotificationResponse, 'N' Notice      relay.go:Session.forward
//	'1' '2' '3' 'n' 'T' 't' 'C' 'I' 's'       relay.go:Session.answer -> proxy/link/match.go:Queue.Answer
//	'D' DataRow, 'G' 'H' 'W' 'd' 'c' COPY     relay.go:Session.forward (raw, never decoded)
//	'V' FunctionCallResponse                  relay.go:Session.forward
//	'D' of pgmux's own queries                relay.go:Session.readCheckRow, settings_link.go:Session.readRow
//	'C' of DISCARD ALL / DEALLOCATE [ALL]     stmtclear.go:Session.readClear
//	'C' of pgmux's SET or DO after a RESET    settings_inplace.go:Session.readCC
//	'R' 'K' 'S' at server login               pool/dial.go:login
//	messages of a server nobody leases        pool/conn.go:Conn.handleIdle
//	'Z' of server_reset_query: forget state   pool/pool.go:Pool.release -> prepared.go:serverState.ServerReset
//
// LISTEN multiplexing (package proxy/listenmux): one listening server connection per
// database, fanned out to the clients that subscribed
// (proxy/listenmux/listener.go:Listener.Subscribe, proxy/listenmux/listener.go:Listener.Pump,
// proxy/listenmux/listener.go:Listener.fanOut); a client is a listenmux.Subscriber
// (listen.go:Session.Notify, listen.go:Server.listenerFor). A listening client's request
// asks for a round trip on that connection, and its ReadyForQuery waits for it, so
// notifications committed before the request come first
// (listen_fence.go:Session.askFence, proxy/listenmux/fence.go:Listener.Fence,
// listen_fence.go:Session.awaitFence). After the listener lost its server, a listening
// client's request, once it has a server, first has it connect and LISTEN again
// (listen_fence.go:Session.restoreListener, proxy/listenmux/listener.go:Listener.Restore).
//
// The admin console (package proxy/console): admin.go:Session.adminLoop reads its
// messages, proxy/console/console.go:Client.Answer parses and checks each statement
// (the verb table: proxy/console/commands.go:command) and runs it on the server
// through admin_cmd.go:consoleBackend; admin_show.go:Server.show builds SHOW results
// (proxy/console/result.go:Result), admin_stats.go:Server.snapshot gathers pool figures.
//
// Metrics (package proxy/metrics): proxy/metrics/metrics.go:Metrics.Collect reads the
// same figures as SHOW at each scrape through metrics_view.go:metricsView (a
// metrics.Source); the latency histograms are proxy/metrics/latency.go:Hist, observed
// from admin_stats.go:Session.noteReady. Served by metrics_http.go:Server.MetricsHandler,
// with metrics_http.go:Server.Ready.
//
// Reload and shutdown: reload.go:Server.Reload, pools.go:pools.reconfigure,
// shutdown.go:Server.Stop.
//
// # The link's rules, without I/O
//
// What a message does to a client's link is decided by functions that neither read nor
// write a socket nor take a lock; the relay gathers their inputs, calls them and
// carries out what they return. Tests drive them with message sequences and tables
// alone (no client, no PostgreSQL):
//
//	the link's bookkeeping: pending, skip...  proxy/link/book.go:Book.SentClient, proxy/link/book.go:Book.Quiet (FuzzRespQueue)
//	which request a server message answers    proxy/link/match.go:Queue.Answer (TestRespQueueSequences, FuzzRespQueue)
//	what an ErrorResponse does                proxy/link/errrule.go:ErrorRule (TestErrorRule)
//	whether the link ends at ReadyForQuery    proxy/link/end.go:End (TestEnd)
//	whether a request pins the client         proxy/link/pin.go:ClassifyText (TestClassifyPins, FuzzClassify)
//	the 0A000 retry: what is kept, if it runs  proxy/link/retry.go:Log.Add, proxy/link/retry.go:PlanRetry (TestPlanRetry)
//
// # Goroutines
//
// Five kinds of goroutine touch a Session: its own (login, then the relay loop: it
// reads the client socket), the reader of the server connection it leases (Pump: it
// writes the client socket for a whole response), the listener's reader (notifications),
// timers (timeouts.go) and the parker (park_linux.go), which resumes a parked session on
// a new goroutine (or, with client_loop, serves its request on the loop itself:
// detach_linux.go resumeOnLoop). A client that logs in on a loop has, until its login ends, the
// login's coroutine (loginloop_linux.go) as its own goroutine: the loop resumes it, and
// it runs only while the loop waits for it. Session's doc comment says which of them owns which field; serverState,
// respQueue, pool.Conn and pool.Pool say the same for theirs, as does every struct of
// this package and pool that several goroutines touch (TestSharedTypesNameOwners checks
// those with a lock, an atomic or a channel, and a list of the others).
//
// No field is untyped (TestNoUntypedFields): what pgmux keeps per server connection
// across leases (prepared.go:serverState) sits in pool.Conn.Tracker, a pool.Tracker the
// pool tells when its reset query has run, and is reached only through
// prepared.go:linkOf and prepared.go:stateOf (TestTrackerOnlyThroughLinkOf).
//
// # The I/O path under the race detector
//
// Client and server sockets are read and written by protocol/wire through their
// descriptors (syscall.RawConn). Race builds run that same path: only the read(2) and
// write(2) shim differs (protocol/wire/rawio_linux.go for normal builds on Linux,
// rawio_other.go for race builds), so every -race test here runs the I/O path that ships.
package proxy
