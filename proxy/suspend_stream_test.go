package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestSuspendWhileRequestWaitsOnAnswer: a client pipelined a long result and, behind it,
// a request too large for the sockets between pgmux and its server; the server reads
// that request only once the result is out, so the client's side is still forwarding
// when SUSPEND comes. PgBouncer reads the server at full speed until every client is
// suspended: the result goes out, the request follows, and SUSPEND returns with the
// request's answer held. pgmux's server reader slept a millisecond before each message
// of the result (looking whether the client's side had become suspended), so the result
// crawled and SUSPEND waited minutes for it.
func TestSuspendWhileRequestWaitsOnAnswer(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			h := startProxy(t, harnessOpts{mode: mode, extra: map[string]string{"suspend_timeout": "0"}})
			c := dialStream(t, h.port, "app")
			require.NoError(t, c.nc.SetDeadline(time.Now().Add(120*time.Second)))
			// 200,000 rows, paused 10 ms every 1,000: at least 2 s; then a 24 MB query.
			const rows = 200_000
			long, err := (&pgproto3.Query{String: fmt.Sprintf("SELECT g, repeat('x', 40), "+
				"CASE WHEN g %% 1000 = 0 THEN pg_sleep(0.01) END FROM generate_series(1, %d) g", rows)}).Encode(nil)
			require.NoError(t, err)
			big, err := (&pgproto3.Query{String: "SELECT length('" + strings.Repeat("y", 24<<20) + "')"}).Encode(nil)
			require.NoError(t, err)
			wrote := make(chan error, 1)
			go func() {
				_, err := c.nc.Write(append(long, big...))
				wrote <- err
			}()
			first := make(chan struct{})
			read := make(chan error, 1)
			go func() { // the long result's rows in order, then the big query's answer
				n, answers := 0, 0
				for answers < 2 {
					typ, body, err := c.next()
					if err != nil {
						read <- fmt.Errorf("after %d rows: %w", n, err)
						return
					}
					switch typ {
					case 'D':
						if answers == 1 {
							if want := fmt.Sprint(24 << 20); string(body[6:]) != want {
								read <- fmt.Errorf("the big query's answer %q, want %s", body[6:], want)
								return
							}
							continue
						}
						if n++; n == 1000 {
							close(first)
						}
					case 'E':
						read <- fmt.Errorf("after %d rows: error %q", n, body)
						return
					case 'Z':
						answers++
						if answers == 1 && n != rows {
							read <- fmt.Errorf("%d rows, want %d", n, rows)
							return
						}
					}
				}
				read <- nil
			}()
			select {
			case <-first:
			case err := <-read:
				t.Fatalf("before SUSPEND: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("no rows 30 s on")
			}
			start := time.Now()
			suspendWithin(t, h, 15*time.Second, "a result whose client's side is still forwarding")
			t.Logf("SUSPEND took %v", time.Since(start))
			_, err = h.admin(t).Exec(context.Background(), "RESUME")
			require.NoError(t, err)
			select {
			case err := <-read:
				require.NoError(t, err)
			case <-time.After(60 * time.Second):
				t.Fatal("the answers did not all arrive 60 s after RESUME")
			}
			require.NoError(t, <-wrote)
		})
	}
}
