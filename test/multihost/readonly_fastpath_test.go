package multihost

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestFunctionCallFirstInStandbyTransaction: a FunctionCall (libpq's PQfn, which its
// large-object calls use) as the first request of a read-only transaction whose BEGIN
// went alone to a standby is answered at once, as on PostgreSQL. It is a request of its
// own, answered without a Sync; pgmux waited for a Sync or a Flush that never comes
// (awaitRequest), and the client hung.
func TestFunctionCallFirstInStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var oid uint32
	direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
	require.NoError(t, direct.QueryRow(ctx, "SELECT 'int4pl'::regproc::oid").Scan(&oid))
	arg := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	call := &pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{1},
		Arguments: [][]byte{arg(2), arg(40)}, ResultFormatCode: 1}

	run := func(c *pgx.Conn) []string {
		pc := c.PgConn()
		_, err := pc.Conn().Write(encode(t, call))
		require.NoError(t, err)
		defer func() { _ = pc.Conn().SetReadDeadline(time.Time{}) }()
		require.NoError(t, pc.Conn().SetReadDeadline(time.Now().Add(5*time.Second)))
		var out []string
		for i := 0; i < 10; i++ {
			m, err := pc.ReceiveMessage(ctx)
			require.NoError(t, err, "the FunctionCall's answer, after %v", out)
			switch m := m.(type) {
			case *pgproto3.FunctionCallResponse:
				out = append(out, "V:"+itoa(int(binary.BigEndian.Uint32(m.Result))))
			case *pgproto3.ErrorResponse:
				out = append(out, "E:"+m.Code)
			case *pgproto3.ReadyForQuery:
				return append(out, "Z:"+string(m.TxStatus))
			}
		}
		t.Fatal("answers without end")
		return nil
	}
	viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
	_, err := direct.Exec(ctx, "BEGIN READ ONLY")
	require.NoError(t, err)
	beginAloneOnStandby(t, p, viaMux)
	want := run(direct)
	require.Equal(t, []string{"V:42", "Z:T"}, want)
	require.Equal(t, want, run(viaMux), "through pgmux as on the primary")
	// The transaction goes on.
	for _, c := range []*pgx.Conn{direct, viaMux} {
		var n int
		require.NoError(t, c.QueryRow(ctx, "SELECT 7").Scan(&n))
		_, err := c.Exec(ctx, "COMMIT")
		require.NoError(t, err)
	}
}
