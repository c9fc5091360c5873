package proxy

import (
	"strconv"
	"strings"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// Some startup values cannot be asked about with set_config as the others are, because
// PostgreSQL's answer at login is not what set_config says on a server in use:
//
//   - a setting only a login may set (log_connections, ignore_system_indexes):
//     set_config refuses every value (55P02), the login takes one the role may set
//     (superuser-backend ones: a superuser, or granted SET) and that reads as the
//     setting's type;
//   - transaction_isolation and transaction_read_only: the login's transaction starts
//     with the server's configured defaults and has a snapshot already, so PostgreSQL
//     refuses a level other than the default (25001) and read-write in a read-only
//     default; set_config's answer would follow the defaults some other client left on
//     the server asked.
//
// For those the query answers a mark, "!" and a word, which the login reads (marked):
// "ok" taken, "priv" not the role's to set, "iso" and "rw" refused in the login's
// transaction, "login TYPE..." a login-only setting of that type and limits the role may
// set (loginTypeFields; its value read as PostgreSQL reads it: startvalue.go).

// sql is the query the ask sends; grants says whether the server has GRANT SET ON
// PARAMETER (PostgreSQL 15), which a role may hold for a superuser-backend setting.
func (a spellAsk) sql(grants bool) string {
	if a.tracked {
		return spellSQL(a.key, a.value)
	}
	switch strings.ToLower(a.key) {
	case "transaction_isolation":
		if isoLevel(a.value) {
			return "SELECT CASE WHEN pg_catalog.lower(" + sqlscan.QuoteLiteral(a.value) + ") = " +
				loginDefault("default_transaction_isolation") + " THEN '!ok' ELSE '!iso' END"
		}
	case "transaction_read_only":
		if on, ok := pgBool(a.value); ok && !on {
			return "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() OR " + loginDefault("default_transaction_read_only") +
				" = 'on' THEN '!rw' ELSE '!ok' END"
		}
	}
	may := "pg_catalog.has_parameter_privilege(session_user, s.name, 'SET')"
	if !grants {
		may = "(SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user)"
	}
	return "SELECT CASE WHEN s.context IS NULL THEN " + spellExpr(a.key, a.value) +
		" WHEN s.context = 'superuser-backend' AND NOT " + may + " THEN '!priv'" +
		" ELSE '!login ' || " + loginTypeFields + " END FROM (SELECT) x LEFT JOIN pg_catalog.pg_show_all_settings() s" +
		" ON pg_catalog.lower(s.name) = pg_catalog.lower(" + sqlscan.QuoteLiteral(a.key) + ")" +
		" AND s.context IN ('backend', 'superuser-backend')"
}

// loginDefault is an expression for the value of the setting name (one that takes no
// quoting) a login's transaction starts with: the server's configured one, before the
// database's and role's settings (ALTER DATABASE, ALTER ROLE ... SET), which PostgreSQL
// applies later in that transaction. A role sees the configured value only where those
// do not set it (reset_val); where they do, the built-in default (boot_val) stands in
// for it, which is right unless the server's configuration sets it too.
func loginDefault(name string) string {
	return "(SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_db_role_setting r, pg_catalog.unnest(r.setconfig) c " +
		"WHERE r.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())) " +
		"AND r.setrole IN (0, (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname = session_user)) " +
		"AND pg_catalog.lower(pg_catalog.split_part(c, '=', 1)) = '" + name + "') THEN s.boot_val ELSE s.reset_val END " +
		"FROM pg_catalog.pg_settings s WHERE s.name = '" + name + "')"
}

// marked is the login's refusal for the ask's mark, nil for a value it takes.
func (a spellAsk) marked(mark string) *pgerr.Error {
	switch mark {
	case "priv":
		return pgerr.New(pgerr.InsufficientPrivilege, "permission denied to set parameter \"%s\"", a.key)
	case "iso":
		return pgerr.New(pgerr.ActiveSQLTransaction, "SET TRANSACTION ISOLATION LEVEL must be called before any query")
	case "rw":
		return pgerr.New(pgerr.ActiveSQLTransaction, "transaction read-write mode must be set before any query")
	}
	if typ, ok := strings.CutPrefix(mark, "login "); ok {
		return loginValueRefusal(a.key, a.value, loginTypeOf(typ))
	}
	return nil
}

// isoLevel reports whether v names an isolation level as PostgreSQL reads the setting.
func isoLevel(v string) bool {
	for _, l := range [...]string{"serializable", "repeatable read", "read committed", "read uncommitted"} {
		if asciiFold(v, l) {
			return true
		}
	}
	return false
}

// pgBool reads v as PostgreSQL reads a boolean setting: a prefix of true, false, yes or
// no, on, of (or more of off), 1 or 0, in any case; ok false for anything else.
func pgBool(v string) (on, ok bool) {
	prefix := func(word string, least int) bool {
		return len(v) >= least && len(v) <= len(word) && asciiFold(v, word[:len(v)])
	}
	switch {
	case prefix("true", 1), prefix("yes", 1), prefix("on", 2), v == "1":
		return true, true
	case prefix("false", 1), prefix("no", 1), prefix("off", 2), v == "0":
		return false, true
	}
	return false, false
}

// asciiFold is strings.EqualFold with ASCII letters only, as PostgreSQL's
// pg_strcasecmp.
func asciiFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// grantsSet reports whether the server, by its reported version, has GRANT SET ON
// PARAMETER (PostgreSQL 15 and later).
func grantsSet(server pool.Params) bool {
	v, _ := server.Get("server_version")
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	return err == nil && n >= 15
}
