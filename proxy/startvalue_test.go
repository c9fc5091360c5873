package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// TestLoginValueAsPostgres: a login-only setting's startup value is read as PostgreSQL
// reads a value of the setting's type (guc.c's parse_and_validate_value), which its SET
// of a setting of the same type, unit and limits does too. Each value is SET on
// PostgreSQL 15 for settings of each kind (an integer in seconds, milliseconds, minutes,
// kB, 8kB blocks, bytes, none; a real with and without a unit; an enum), and
// loginValueRefusal, given the setting's row of pg_settings as the login's ask gets it,
// must refuse exactly what PostgreSQL refuses, with its SQLSTATE, message and hint.
func TestLoginValueAsPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	conn := pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	settings := []string{"tcp_keepalives_idle", "statement_timeout", "work_mem",
		"effective_cache_size", "log_parameter_max_length_on_error", "extra_float_digits", "seq_page_cost",
		"cursor_tuple_fraction", "vacuum_cost_delay", "bytea_output", "jit"}
	values := []string{"x", "", "  ", "1", "+3", "-1", "0", "1s", "1 s", "5 S", "1min", "1 min", "1h", "1d", "36min",
		"1ms", "500ms", "1500ms", "2500ms", "1.5", "0.5", "-0.5", "1.5s", "0x10", "0X1f", "010", "08", "0x", "1e3",
		"1.5e1", "1e", "1e+", "1e-400", "1e400", "99999999999", "99999999999999999999", "2147483648", "inf",
		"-Infinity", "nan", "1 s x", "1kB", "2 MB", "1.5GB", "3TB", "100B", "7 kB", "minx", "1us", "0x1.8p1",
		".5", "5.", "-", "1mins", "hex", "HEX", "escape", "on", "Off", "true", "2", "1e308", "1.79769e+308",
		"0x1p3", " 0x10 ", "1e-5", "1.0000001", "1e2ms", "+inf", "nan(123)", "1E3", "\t5", "5\n", "-0", "4294967296",
		"-2147483649", "1.5e-320", "1e-320", "0.001", "2147483647", "2147483647.5", "-2147483648", "1e-7 s", "0.5us",
		"1.7976931348623157e308", "3 tB", "0b1"}
	for _, name := range settings {
		var g loginType
		var unit, lo, hi, enums *string
		require.NoError(t, conn.QueryRow(ctx, "SELECT vartype, unit, min_val, max_val, array_to_string(enumvals, E'\\n') "+
			"FROM pg_settings WHERE name = $1", name).Scan(&g.vartype, &unit, &lo, &hi, &enums))
		g = loginTypeOf(g.vartype + "\n" + deref(unit) + "\n" + deref(lo) + "\n" + deref(hi) + "\n" + deref(enums))
		for _, v := range values {
			want := "ok"
			_, err := conn.Exec(ctx, "SET "+name+" = "+sqlscan.QuoteLiteral(v), pgx.QueryExecModeSimpleProtocol)
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				want = pe.Code + " " + pe.Message + " (" + pe.Hint + ")"
			} else {
				require.NoError(t, err)
			}
			got := "ok"
			if e := loginValueRefusal(name, v, g); e != nil {
				got = e.Code + " " + e.Message + " (" + e.Hint + ")"
			}
			require.Equal(t, want, got, "%s = %q (%s, unit %q)", name, v, g.vartype, g.unit)
		}
		_, err := conn.Exec(ctx, "RESET "+name)
		require.NoError(t, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestLoginTypeOf: the ask's answer read back, as the query writes it.
func TestLoginTypeOf(t *testing.T) {
	require.Equal(t, loginType{vartype: "integer", unit: "s", min: "0", max: "2147"}, loginTypeOf("integer\ns\n0\n2147\n"))
	require.Equal(t, loginType{vartype: "enum", enumvals: []string{"a", "b"}}, loginTypeOf("enum\n\n\n\na\nb"))
	require.Equal(t, loginType{vartype: "bool"}, loginTypeOf("bool"))
}
