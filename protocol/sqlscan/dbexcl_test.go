package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExclusiveDatabase(t *testing.T) {
	for _, tc := range []struct {
		sql, db string
	}{
		{`DROP DATABASE "test_dj"`, "test_dj"}, // Django's test runner
		{`DROP DATABASE IF EXISTS "Test"`, "Test"},
		{"drop database if exists app_test;", "app_test"},
		{"DROP DATABASE x WITH (FORCE)", "x"},
		{"/* c */ DROP DATABASE Mixed", "mixed"},
		{"DROP DATABASE if", "if"},
		{`CREATE DATABASE "test_dj_1" WITH TEMPLATE "test_dj"`, "test_dj"}, // Django's parallel clone
		{"CREATE DATABASE b OWNER = app TEMPLATE = a ENCODING 'UTF8'", "a"},
		{"ALTER DATABASE a RENAME TO b", "a"},
		{"ALTER DATABASE a SET TABLESPACE t", "a"},
		{"ALTER DATABASE a SET work_mem = '1MB'", ""},
		{"CREATE DATABASE b", ""},
		{"CREATE DATABASE b TEMPLATE DEFAULT", ""},
		{"CREATE DATABASE b; SELECT 'template x'", ""},
		{"DROP TABLE x", ""},
		{"DROP DATABASE", ""},
		{"SELECT 'DROP DATABASE x'", ""},
	} {
		db, ok := ExclusiveDatabase(tc.sql)
		require.Equal(t, tc.db != "", ok, tc.sql)
		require.Equal(t, tc.db, db, tc.sql)
	}
}

func FuzzExclusiveDatabase(f *testing.F) {
	for _, s := range []string{`DROP DATABASE IF EXISTS "x"`, "CREATE DATABASE a TEMPLATE = b", "ALTER DATABASE a RENAME TO b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		_, _ = ExclusiveDatabase(sql)
	})
}
