package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewestBinDir(t *testing.T) {
	root := t.TempDir()
	mk := func(version string, progs ...string) string {
		dir := filepath.Join(root, version, "bin")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, p := range progs {
			require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755))
		}
		return dir
	}
	v96 := mk("9.6", serverBins...)
	v10 := mk("10", serverBins...)
	v15 := mk("15", serverBins...)
	v17 := mk("17", "initdb") // incomplete: ignored

	require.Equal(t, v15, newestBinDir([]string{v96, v17, v15, v10}))
	require.Equal(t, v10, newestBinDir([]string{v96, v10}))
	require.Equal(t, "", newestBinDir([]string{v17}))

	t.Run("env overrides", func(t *testing.T) {
		env := map[string]string{EnvBin: v96}
		dir, err := findBinDir(func(k string) string { return env[k] })
		require.NoError(t, err)
		require.Equal(t, v96, dir)

		env[EnvBin] = v17
		_, err = findBinDir(func(k string) string { return env[k] })
		require.ErrorContains(t, err, "no executable pg_ctl")
		var u *unavailableError
		require.NotErrorAs(t, err, &u, "a broken %s is a failure, not a skip", EnvBin)
	})
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"15", []int{15}},
		{"9.6", []int{9, 6}},
		{"17beta1", []int{17}},
		{"x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, parseVersion(tt.in))
		})
	}
	require.Positive(t, compareVersions([]int{10}, []int{9, 6}))
	require.Zero(t, compareVersions([]int{15}, []int{15, 0}))
}

func TestDatabaseName(t *testing.T) {
	require.Equal(t, "my_test_12_3", databaseName("My-Test", 12, 3))
	require.Equal(t, "db_1x_12_3", databaseName("1x", 12, 3))
	require.Equal(t, "db__12_3", databaseName("", 12, 3))
	long := databaseName(strings.Repeat("a", 100), 123456, 789)
	require.Len(t, long, 63)
	require.True(t, strings.HasSuffix(long, "_123456_789"))
}

func TestConnString(t *testing.T) {
	s := &Server{Host: "127.0.0.1", Port: 5999, query: "sslmode=disable"}
	require.Equal(t, `host='127.0.0.1' port='5999' user='u' password='it\'s \\ me' dbname='d b' sslmode='disable'`,
		s.ConnString("u", `it's \ me`, "d b"))
	require.Equal(t, "postgres://u:p%40ss@127.0.0.1:5999/d?sslmode=disable", s.URL("u", "p@ss", "d"))
	require.Equal(t, "postgres://u@127.0.0.1:5999/d?sslmode=disable", s.URL("u", "", "d"))
}

func TestHBAConf(t *testing.T) {
	conf := hbaConf()
	require.Contains(t, conf, "host    all          md5user     127.0.0.1/32    md5\n")
	require.Contains(t, conf, "host    all          scramuser   ::1/128         scram-sha-256\n")
	// The catch-all must come after the per-role rules: first match wins.
	require.Less(t, strings.Index(conf, "plainuser"), strings.Index(conf, "all         127.0.0.1/32    trust"))
}

// TestExternal drives the PGMUX_TEST_PG_URL path against the managed server.
func TestExternal(t *testing.T) {
	managed := Start(t)
	ext, err := openExternal(context.Background(), managed.URL(SuperUser, "", "postgres")+"&application_name=x")
	require.NoError(t, err, "bootstrap must be idempotent")
	require.Equal(t, managed.Host, ext.Host)
	require.Equal(t, managed.Port, ext.Port)
	require.Zero(t, ext.Pid())
	require.Empty(t, ext.SocketDir)
	require.Equal(t, "postgres://app:apppass@127.0.0.1:"+strconv.Itoa(managed.Port)+"/app?application_name=x&sslmode=disable",
		ext.URL(AppUser, AppPassword, AppDB))
	ext.Exec(t, "SELECT 1")
	db := ext.NewDatabase(t, "ext")
	conn := ext.Connect(t, ScramUser, ScramPassword, db)
	require.NoError(t, conn.Ping(context.Background()))
	ext.Stop() // a no-op: the server is not ours
	require.NoError(t, conn.Ping(context.Background()))

	_, err = openExternal(context.Background(), "host=127.0.0.1")
	require.ErrorContains(t, err, "must be a postgres:// URL")
}

// recordTB captures how fail ends a test instead of ending it.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                      {}
func (r *recordTB) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recordTB) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }

func TestMissingPostgresSkipsOnlyOutsideCI(t *testing.T) {
	missing := &unavailableError{reason: "no PostgreSQL"}
	tests := []struct {
		ci, requireAll string
		err            error
		wantSkip       bool
	}{
		{"", "", missing, true},
		{"false", "0", missing, true},
		{"true", "", missing, false},
		{"1", "", missing, false},
		{"", "1", missing, false}, // make test
		{"", "", errors.New("initdb failed"), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("CI=%q/REQUIRE_ALL=%q/%v", tt.ci, tt.requireAll, tt.err), func(t *testing.T) {
			t.Setenv(EnvCI, tt.ci)
			t.Setenv(EnvRequireAll, tt.requireAll)
			rec := &recordTB{TB: t}
			fail(rec, tt.err)
			if tt.wantSkip {
				require.Contains(t, rec.skipped, tt.err.Error())
				require.Empty(t, rec.failed)
			} else {
				require.Contains(t, rec.failed, tt.err.Error())
				require.Empty(t, rec.skipped)
			}
		})
	}
}
