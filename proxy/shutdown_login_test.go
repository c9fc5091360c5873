package proxy_test

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/proxy"
)

// TestStopCutsLogins: an immediate shutdown ends the clients still logging in with the
// others (FATAL 57P01, then the end of the connection), on the client loops and off
// them: one that has sent nothing yet, one asked for its password. Stop cut the
// logged-in clients only, then waited for every client goroutine, a login's among them,
// which waits for its client until client_login_timeout (a minute by default): nothing
// but Stop itself could end that wait, so it gave up after sessionsEndWait (2 s, "gave up
// waiting for client sessions") and returned with those connections open.
func TestStopCutsLogins(t *testing.T) {
	for _, loop := range []string{"1", "0"} {
		t.Run("client_loop="+loop, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := startProxy(t, harnessOpts{log: zap.New(core), extra: map[string]string{"client_loop": loop, "auth_type": "md5"}})
			creds := map[string]config.Credential{"app": {User: "app", Password: "pw"}}
			require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
			dial := func() net.Conn {
				nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port))
				require.NoError(t, err)
				t.Cleanup(func() { _ = nc.Close() })
				require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
				return nc
			}
			silent := dial()
			asked := dial()
			_, err := asked.Write(startupBytes())
			require.NoError(t, err)
			var hdr [5]byte
			_, err = io.ReadFull(asked, hdr[:])
			require.NoError(t, err)
			require.Equal(t, byte('R'), hdr[0], "the password request")
			_, err = io.ReadFull(asked, make([]byte, binary.BigEndian.Uint32(hdr[1:])-4))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return proxy.LoggingInForTest(h.srv) == 2 }, 10*time.Second, 5*time.Millisecond,
				"both clients logging in")

			require.NoError(t, h.srv.Close())
			for name, nc := range map[string]net.Conn{"silent": silent, "asked for its password": asked} {
				require.NoError(t, nc.SetReadDeadline(time.Now().Add(2*time.Second)), name)
				require.Equal(t, "57P01", readFatal(t, nc).Code, name)
			}
			require.Empty(t, logs.FilterMessageSnippet("gave up waiting").All(), "Stop waited for the logins")
		})
	}
}
