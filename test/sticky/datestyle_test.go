package sticky

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStartupDateStyleAsPostgres: a client's startup DateStyle, as a parameter of its
// own or in options, is reported at login as PostgreSQL reports it, in its normalized
// spelling ("Postgres, MDY" for "Postgres,MDY", the order or style the client left out
// from the server's value), and its first request brings no ParameterStatus, as on a
// direct connection. pgmux used to report the client's text as given and then relay the
// server's report of the value it set at the first request.
func TestStartupDateStyleAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "datestyle")
	type tc struct{ name, key, value string }
	var cases []tc
	for _, v := range []string{"Postgres,MDY", "iso", "sql, dmy", "German", "ymd, german",
		"postgresql,euro", " SQL ,noneuropean ", "US", "default, sql", "german, default"} {
		cases = append(cases, tc{"param " + v, "DateStyle", v})
	}
	cases = append(cases, tc{"options Postgres,MDY", "options", "-c DateStyle=Postgres,MDY"},
		tc{"options sql, dmy", "options", `-c datestyle=sql,\ dmy`})
	for _, c := range cases {
		t.Run(strings.TrimSpace(c.name), func(t *testing.T) {
			params := map[string]string{c.key: c.value}
			viaMux, direct := muxAndDirect(t, m, db, params)
			want := direct.PgConn().ParameterStatus("DateStyle")
			assert.Equal(t, want, viaMux.PgConn().ParameterStatus("DateStyle"), "at login")
			wantSeen, wantReported := pipelined(t, direct, "SHOW DateStyle", "SELECT 1")
			gotSeen, gotReported := pipelined(t, viaMux, "SHOW DateStyle", "SELECT 1")
			require.Equal(t, wantSeen, gotSeen)
			require.Equal(t, wantReported, gotReported, "ParameterStatus in the first requests")
		})
	}
}
