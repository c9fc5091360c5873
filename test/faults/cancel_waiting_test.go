package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestCancelWhileWaiting: with pool_size 1 and the server held in a transaction, a client
// sends an autocommit INSERT, which queues for the server, and then a cancel request for
// it, as postgres.js' query.cancel(), psql's ^C and the query timeouts of asyncpg and
// JDBC do. PostgreSQL would cancel the statement; pgmux dropped the cancel (no server to
// forward it to) and ran the INSERT once the holder committed. Now the request is
// answered at once, while the holder still holds the server, with PostgreSQL's 57014
// "canceling statement due to user request", the INSERT never runs, and the client's
// next request (and, in a pipeline, the request behind the canceled one) runs as usual.
func TestCancelWhileWaiting(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "cancelwait")
	pg.ExecDB(t, db, "CREATE TABLE t (id int); GRANT ALL ON t TO PUBLIC")
	super := superConn(t, pg, db)

	for _, tc := range []struct {
		name string
		// send sends the INSERT (and, for the pipeline, a SELECT behind it) and reads the
		// answers: the INSERT's error on first, then whatever follows on rest.
		send func(ctx context.Context, c *pgconn.PgConn, first, rest chan<- error)
	}{
		{"simple", func(ctx context.Context, c *pgconn.PgConn, first, rest chan<- error) {
			_, err := c.Exec(ctx, "INSERT INTO t VALUES (1)").ReadAll()
			first <- err
			rest <- nil
		}},
		{"extended", func(ctx context.Context, c *pgconn.PgConn, first, rest chan<- error) {
			first <- c.ExecParams(ctx, "INSERT INTO t VALUES ($1)", [][]byte{[]byte("1")}, nil, nil, nil).Read().Err
			rest <- nil
		}},
		{"pipeline", func(ctx context.Context, c *pgconn.PgConn, first, rest chan<- error) {
			p := c.StartPipeline(ctx)
			p.SendQueryParams("INSERT INTO t VALUES ($1)", [][]byte{[]byte("1")}, nil, nil, nil)
			p.SendPipelineSync()
			p.SendQueryParams("SELECT 2", nil, nil, nil, nil)
			p.SendPipelineSync()
			if err := p.Flush(); err != nil {
				first <- err
				rest <- err
				return
			}
			first <- pipelineResult(p)
			rest <- errors.Join(pipelineSync(p), pipelineResult(p), pipelineSync(p), p.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, pg, bouncer{PoolSize: 1})
			adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
			holder := connect(t, m.App(db))
			exec(t, holder, "BEGIN")
			exec(t, holder, "SELECT 1")

			ctx, cancel := ctxT()
			defer cancel()
			c, err := pgconn.Connect(ctx, m.App(db))
			require.NoError(t, err)
			defer c.Close(context.Background())
			first, rest := make(chan error, 1), make(chan error, 1)
			go tc.send(ctx, c, first, rest)
			eventually(t, 10*time.Second, "the client never queued", func() bool { return clWaiting(t, adm, db) == 1 })

			require.NoError(t, c.CancelRequest(ctx))
			select {
			case err := <-first:
				pe := requireCode(t, err, "57014")
				require.Equal(t, "canceling statement due to user request", pe.Message)
			case <-time.After(5 * time.Second):
				t.Fatal("the canceled request still waits for the server")
			}

			exec(t, holder, "COMMIT")
			require.NoError(t, <-rest, "the request behind the canceled one")
			_, err = c.Exec(ctx, "SELECT 1").ReadAll()
			require.NoError(t, err, "the client's next request")
			require.Zero(t, queryInt(t, super, "SELECT count(*) FROM t"), "the canceled INSERT ran")
			requireCleanServer(t, m.App(db))
		})
	}
}

// pipelineResult reads the next query's result from p.
func pipelineResult(p *pgconn.Pipeline) error {
	r, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := r.(*pgconn.ResultReader)
	if !ok {
		return errors.New("not a query result")
	}
	return rr.Read().Err
}

// pipelineSync reads the next Sync's answer from p.
func pipelineSync(p *pgconn.Pipeline) error {
	r, err := p.GetResults()
	if err != nil {
		return err
	}
	if _, ok := r.(*pgconn.PipelineSync); !ok {
		return errors.New("not a pipeline sync")
	}
	return nil
}
