package proxy

import (
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// Every field of sessionWork is either state the client made, which keeps a parking
// client's working state (each setter below must make ownsNothing false), or scratch and
// counters it can give back (given). A new field fails this test until it is put in one
// list or the other: a parked client must never lose what it made, nor keep what it
// did not.
func TestWorkFieldsClassified(t *testing.T) {
	kept := map[string][]func(w *sessionWork){
		"Pending":        {func(w *sessionWork) { w.Pending = 1 }},
		"Unsynced":       {func(w *sessionWork) { w.Unsynced = true }},
		"TxStatus":       {func(w *sessionWork) { w.TxStatus = 'T' }, func(w *sessionWork) { w.TxStatus = 'E' }},
		"fo":             {func(w *sessionWork) { w.fo = foTell }},
		"ErrSkip":        {func(w *sessionWork) { w.ErrSkip = true }},
		"DropErr":        {func(w *sessionWork) { w.DropErr = true }},
		"ddlSent":        {func(w *sessionWork) { w.ddlSent = true }},
		"flushNow":       {func(w *sessionWork) { w.flushNow = true }},
		"q":              {func(w *sessionWork) { w.q.push(&expect{Kind: 'Q'}) }, func(w *sessionWork) { w.q.fakes.Add(1) }, func(w *sessionWork) { w.q.clears.Add(1) }},
		"heldErr":        {func(w *sessionWork) { w.heldErr = []byte{'E'} }},
		"lostLease":      {func(w *sessionWork) { w.lostLease = &pool.Conn{} }},
		"stmts":          {func(w *sessionWork) { w.stmts = map[string]*stmtDef{"s1": {}} }},
		"clears":         {func(w *sessionWork) { w.clears.sent = 1 }, func(w *sessionWork) { w.clears.done.Store(1) }, func(w *sessionWork) { w.clears.dropped = make([]clearDrop, 1) }, func(w *sessionWork) { w.clears.drops.Store(1) }, func(w *sessionWork) { w.clears.probeDue = true }},
		"clearPortals":   {func(w *sessionWork) { w.clearPortals = map[string]clearOp{"p": {name: clearAll}} }},
		"deferred":       {func(w *sessionWork) { w.deferred = []deferredOp{{typ: 'C'}} }},
		"unnamed":        {func(w *sessionWork) { w.unnamed.body = []byte{0} }, func(w *sessionWork) { w.unnamed.live = true }, func(w *sessionWork) { w.unnamed.unflushed = true }, func(w *sessionWork) { w.unnamed.def = &stmtDef{} }, func(w *sessionWork) { w.unnamed.setOp(clearOp{name: clearAll}) }, func(w *sessionWork) { w.unnamed.setOp(clearOp{prep: &sqlPrep{}}) }},
		"unnamedPin":     {func(w *sessionWork) { w.unnamedPin = pinTemp }},
		"holdsDirect":    {func(w *sessionWork) { w.holdsDirect = true }},
		"releaseSeen":    {func(w *sessionWork) { w.releaseSeen = true }},
		"unnamedRelease": {func(w *sessionWork) { w.unnamedRelease = true }},
		"linkReplica":    {func(w *sessionWork) { w.linkReplica = true }},
		"forcePrimary":   {func(w *sessionWork) { w.forcePrimary = true }},
		"onReplica":      {func(w *sessionWork) { w.onReplica = true }},
		"pick":           {func(w *sessionWork) { w.pick = &pool.Pool{} }},
		"rrNext":         {func(w *sessionWork) { w.rrNext = &replicaReq{} }},
		"rw":             {func(w *sessionWork) { w.rw.lsn = 1 }},
		"rr":             {func(w *sessionWork) { w.rr.Store(&replicaReq{}) }},
		"rwDirtyAt":      {func(w *sessionWork) { w.rwDirtyAt = monoNow() }},
		"roMoved":        {func(w *sessionWork) { w.roMoved = 1 }},
	}
	// given back at a park: a memo, counters (folded into the pool's totals), a request
	// count, a pin sequence and the server's FATAL seen that only matter with requests in
	// flight or a server linked, the state check's scratch, a buffer.
	given := map[string]func(w *sessionWork){
		"scan":         func(w *sessionWork) { w.scan = scanMemo{seq: 3, n: 1, lead: sqlscan.Lead{Interesting: true}} },
		"stats":        func(w *sessionWork) { w.stats = SessionStats{Transactions: 1, Queries: 2, BytesIn: 3} },
		"ops":          func(w *sessionWork) { w.ops.parses = 1; w.ops.in.Store(10); w.ops.queryTime = time.Second },
		"Reqs":         func(w *sessionWork) { w.Reqs = 9 },
		"scratch":      func(w *sessionWork) { w.scratch = make([]byte, 64) },
		"checkCount":   func(w *sessionWork) { w.checkCount = 2 },
		"pinSeq":       func(w *sessionWork) { w.pinSeq = 4 },
		"serverFatal":  func(w *sessionWork) { w.serverFatal = true }, // only while a server is linked
		"box":          func(w *sessionWork) { w.box = pool.NewLeaseBox(nil) },
		"limits":       func(w *sessionWork) { w.limits = timeLimits{query: 1, idleTx: 2, tx: 3} },
		"lw":           func(w *sessionWork) { w.lw = &loopWork{} },        // idle whenever the client waits for a request
		"cancelAsked":  func(w *sessionWork) { w.cancelAsked.Store(true) }, // only while a request waits
		"replicaWait":  func(w *sessionWork) { w.replicaWait = &pool.Pool{} },
		"roFresh":      func(w *sessionWork) { w.roFresh = 1 },         // only while a standby is linked
		"cacheUnnamed": func(w *sessionWork) { w.cacheUnnamed = true }, // set as each link begins
		"reqTx":        func(w *sessionWork) { w.reqTx = txBegins },    // set for each Query
	}
	var names []string
	typ := reflect.TypeFor[sessionWork]()
	for _, f := range reflect.VisibleFields(typ) {
		if f.Anonymous {
			continue // an embedded struct (book, a link.Book): its fields are listed one by one
		}
		names = append(names, f.Name)
		_, k := kept[f.Name]
		_, g := given[f.Name]
		require.True(t, k != g, "sessionWork.%s must be either kept (state the client made) or given back at a park", f.Name)
	}
	for name := range kept {
		require.True(t, slices.Contains(names, name), "no field %s", name)
	}
	for name := range given {
		require.True(t, slices.Contains(names, name), "no field %s", name)
	}

	require.True(t, newWork().ownsNothing(), "a fresh working state owns nothing")
	for name, sets := range kept {
		for i, set := range sets {
			w := newWork()
			set(w)
			require.False(t, w.ownsNothing(), "%s (setter %d): a parked client would lose it", name, i)
			// The unnamed statement's body and the named statements are kept aside
			// (keptWork); anything else keeps the whole working state.
			aside := name == "unnamed" && i == 0 || name == "stmts"
			require.Equal(t, aside, w.ownsNothingElse(), "%s (setter %d): shed keeps statements aside, nothing else", name, i)
		}
	}
	w := newWork()
	for _, set := range given {
		set(w)
	}
	require.True(t, w.ownsNothing(), "counters and scratch alone keep the working state")
}

// A logged-in idle client holds the Session alone; its working state is a second
// allocation, made while it runs. Neither may grow into the next allocation size
// class unnoticed (bench/README.md: idle memory). The Session was 320 bytes: its names
// and reported parameters, which the idle clients of a pool hold alike, went behind
// pointers (256), its small fields became bytes, and the listening clients' flags moved
// to their notification box (240). It went back to 256 for kept (keptWork): a client
// parked with its unnamed statement behind it (most drivers leave one after every
// request) gives back its 576-byte working state for the statement's body alone, where
// every other idle client pays 16 bytes.
func TestSessionSizeBounded(t *testing.T) {
	t.Logf("Session %d bytes, sessionWork %d", unsafe.Sizeof(Session{}), unsafe.Sizeof(sessionWork{}))
	require.LessOrEqual(t, unsafe.Sizeof(Session{}), uintptr(256), "Session grew past its 256-byte size class")
	require.LessOrEqual(t, unsafe.Sizeof(sessionWork{}), uintptr(576), "sessionWork grew past its 576-byte size class")
	// The loop's state of a client it served (clientloop.go); its memo of a Parse's or
	// Bind's split (msgFields) took what was padding.
	t.Logf("loopWork %d bytes", unsafe.Sizeof(loopWork{}))
	require.LessOrEqual(t, unsafe.Sizeof(loopWork{}), uintptr(176), "loopWork grew past its 176-byte size class")
}
