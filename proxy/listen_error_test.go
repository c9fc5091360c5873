package proxy

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// A failed LISTEN on the shared listener says what the client can act on: the server's
// own refusal as it is, else that the server could not be reached (in time, or why),
// pgmux's account in the detail only.
func TestListenError(t *testing.T) {
	wait := 3 * time.Second
	for _, tc := range []struct {
		name      string
		err       error
		code, msg string
		detailHas string
		hint      bool
	}{
		{"the server's refusal", fmt.Errorf("listener connection: %w", pgerr.New("28P01", `password authentication failed for user "app"`)),
			"28P01", `password authentication failed for user "app"`, "", false},
		{"a LISTEN error", pgerr.New("42601", "syntax error"), "42601", "syntax error", "", false},
		{"waited out query_wait_timeout", fmt.Errorf("listener connection: %w: %w", pool.ErrWaitTimeout, context.DeadlineExceeded),
			"08006", `LISTEN jobs: could not reach the server for database "app" within query_wait_timeout (3s)`, "timed out waiting", true},
		{"the retry's own deadline", fmt.Errorf("waiting for the listener connection: %w (last: %v)", context.DeadlineExceeded, syscall.ECONNREFUSED),
			"08006", `LISTEN jobs: could not reach the server for database "app" within query_wait_timeout (3s)`, "connection refused", true},
		{"a broken connection", fmt.Errorf("listener connection: %w", errors.New("raw-write unix @->/tmp/.s.PGSQL.5432: broken pipe")),
			"08006", `LISTEN jobs: could not connect to the server for database "app"`, "broken pipe", true},
		{"a server going down (08 code)", pgerr.New("08006", "server closed the connection"),
			"08006", `LISTEN jobs: could not connect to the server for database "app"`, "server closed the connection", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := listenError("jobs", "app", wait, tc.err)
			require.Equal(t, pgerr.SeverityError, pe.Severity)
			require.Equal(t, tc.code, pe.Code)
			require.Equal(t, tc.msg, pe.Message)
			require.Contains(t, pe.Detail, tc.detailHas)
			require.Equal(t, tc.hint, pe.Hint != "", pe.Hint)
		})
	}
}
