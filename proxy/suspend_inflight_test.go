package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// suspendAsync runs SUSPEND on a console connection of its own, within 30 s, and sends
// its error to the channel it returns.
func suspendAsync(t *testing.T, h *harness) <-chan error {
	t.Helper()
	adm := h.admin(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := adm.Exec(ctx, "SUSPEND")
		done <- err
	}()
	return done
}

// suspendWithin runs SUSPEND and fails the test unless it returns, without error,
// within d.
func suspendWithin(t *testing.T, h *harness, d time.Duration, what string) {
	t.Helper()
	done := suspendAsync(t, h)
	select {
	case err := <-done:
		require.NoError(t, err, "SUSPEND")
	case <-time.After(d):
		t.Fatalf("SUSPEND still waits, %v on, for %s", d, what)
	}
}

// TestSuspendQueryInFlight: SUSPEND returns once socket buffers are flushed, as
// PgBouncer's does, while a client's query is still running on its server, or while a
// client pipelines queries back to back: it stops reading clients and servers, so such a
// client is suspended as it is, its answers waiting in the server's socket until RESUME,
// and after RESUME every answer arrives, whole and in order (transaction and session
// mode). pgmux's SUSPEND waited for the running query's answer, and for a pipelining
// client to pause.
func TestSuspendQueryInFlight(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode+"/a query running", func(t *testing.T) {
			h := startProxy(t, harnessOpts{mode: mode, extra: map[string]string{"suspend_timeout": "0"}})
			app := h.connect(t, "app", "app", false)
			type answer struct {
				v   int
				err error
			}
			got := make(chan answer, 1)
			start := time.Now()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				var v int
				err := app.QueryRow(ctx, "SELECT 42 FROM pg_sleep(3)").Scan(&v)
				got <- answer{v, err}
			}()
			time.Sleep(500 * time.Millisecond) // the query runs on its server
			// The query ends 3 s after it began: SUSPEND returns before.
			suspendWithin(t, h, 2*time.Second, "a query running on its server")
			select {
			case a := <-got:
				t.Fatalf("the answer reached the client while suspended (%v, %v)", a.v, a.err)
			case <-time.After(time.Until(start.Add(4500 * time.Millisecond))): // 1.5 s past its end
			}
			_, err := h.admin(t).Exec(context.Background(), "RESUME")
			require.NoError(t, err)
			select {
			case a := <-got:
				require.NoError(t, a.err, "the answer after RESUME")
				require.Equal(t, 42, a.v)
			case <-time.After(10 * time.Second):
				t.Fatal("no answer 10 s after RESUME")
			}
			execSQL(t, app, "SELECT 1")
		})

		t.Run(mode+"/a client pipelining", func(t *testing.T) {
			h := startProxy(t, harnessOpts{mode: mode, extra: map[string]string{"suspend_timeout": "0"}})
			c := dialStream(t, h.port, "app")
			require.NoError(t, c.nc.SetDeadline(time.Now().Add(60*time.Second)))
			const most = 1_000_000
			var sent, answered atomic.Int64
			var stop atomic.Bool
			wrote := make(chan error, 1)
			go func() { // queries back to back, never waiting for an answer
				for i := int64(1); i <= most && !stop.Load(); i++ {
					b, _ := (&pgproto3.Query{String: "SELECT " + strconv.FormatInt(i, 10)}).Encode(nil)
					if _, err := c.nc.Write(b); err != nil {
						wrote <- err
						return
					}
					sent.Store(i)
				}
				wrote <- nil
			}()
			read := make(chan error, 1)
			go func() { // each answer whole, in order: T, D with the query's number, C, Z
				for want := int64(1); ; {
					typ, body, err := c.next()
					if err != nil {
						read <- err
						return
					}
					switch typ {
					case 'D':
						if len(body) < 6 || string(body[6:]) != strconv.FormatInt(want, 10) {
							read <- fmt.Errorf("answer %d: DataRow %q", want, body)
							return
						}
					case 'Z':
						answered.Store(want)
						want++
					case 'E':
						read <- fmt.Errorf("answer %d: error %q", want, body)
						return
					}
				}
			}()
			require.Eventually(t, func() bool { return answered.Load() > 500 }, 20*time.Second, 5*time.Millisecond,
				"the pipelined queries are not answered")
			suspendWithin(t, h, 3*time.Second, "a client pipelining queries")
			// Answers pgmux wrote before SUSPEND returned may still sit in the client's
			// socket buffer (SUSPEND flushes pgmux's buffers, as PgBouncer's does): the
			// count settles once the reader has them, then must not move.
			before := answered.Load()
			for settle := time.Now().Add(2 * time.Second); ; {
				time.Sleep(50 * time.Millisecond)
				now := answered.Load()
				if now == before {
					break
				}
				before = now
				require.True(t, time.Now().Before(settle), "answers keep reaching the client while suspended")
			}
			time.Sleep(300 * time.Millisecond)
			require.Equal(t, before, answered.Load(), "answers reached the client while suspended")
			_, err := h.admin(t).Exec(context.Background(), "RESUME")
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond) // traffic again
			stop.Store(true)
			select {
			case err := <-wrote:
				require.NoError(t, err, "the client's writes")
			case <-time.After(20 * time.Second):
				t.Fatal("the client's writes did not end 20 s after RESUME")
			}
			n := sent.Load()
			for deadline := time.Now().Add(30 * time.Second); answered.Load() < n; time.Sleep(5 * time.Millisecond) {
				select {
				case err := <-read:
					t.Fatalf("after %d of %d answers: %v", answered.Load(), n, err)
				default:
				}
				require.True(t, time.Now().Before(deadline), "%d of %d answers 30 s after RESUME", answered.Load(), n)
			}
			t.Logf("%d pipelined queries, %d answered before SUSPEND returned", n, before)
		})
	}
}
