package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// roles are created by bootstrap. passwordEncryption decides how the password
// is stored, and so which challenge an md5 pg_hba rule sends: an md5 hash gets
// an MD5 challenge, a SCRAM verifier gets SCRAM.
var roles = []struct{ name, password, passwordEncryption string }{
	{MD5User, MD5Password, "md5"},
	{ScramUser, ScramPassword, "scram-sha-256"},
	{PlainUser, PlainPassword, "scram-sha-256"},
	{AppUser, AppPassword, "scram-sha-256"},
}

// bootstrap creates the roles and the app database unless they exist. It is
// idempotent and tolerates other test binaries doing the same at the same time
// on a shared external server.
func bootstrap(ctx context.Context, s *Server) error {
	conn, err := pgx.Connect(ctx, s.URL(s.superUser, s.superPassword, s.superDB))
	if err != nil {
		return fmt.Errorf("bootstrap: connect as %s: %w", s.superUser, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, r := range roles {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", r.name).Scan(&exists); err != nil {
			return fmt.Errorf("bootstrap: look up role %s: %w", r.name, err)
		}
		if exists {
			continue
		}
		sql := fmt.Sprintf("SET password_encryption = '%s'; CREATE ROLE %s LOGIN PASSWORD '%s'; RESET password_encryption",
			r.passwordEncryption, quoteIdent(r.name), r.password)
		if _, err := conn.Exec(ctx, sql); err != nil && !alreadyExists(err) {
			return fmt.Errorf("bootstrap: create role %s: %w", r.name, err)
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", AppDB).Scan(&exists); err != nil {
		return fmt.Errorf("bootstrap: look up database %s: %w", AppDB, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+quoteIdent(AppDB)+" OWNER "+quoteIdent(AppUser))
		if err != nil && !alreadyExists(err) {
			return fmt.Errorf("bootstrap: create database %s: %w", AppDB, err)
		}
	}
	if err := s.exec(ctx, AppDB, "GRANT ALL ON SCHEMA public TO PUBLIC"); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// alreadyExists reports a lost creation race: duplicate_object,
// duplicate_database, or the catalog's unique index.
func alreadyExists(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "42P04" || pgErr.Code == "23505")
}

// openExternal describes the server at PGMUX_TEST_PG_URL and bootstraps it.
func openExternal(ctx context.Context, raw string) (*Server, error) {
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		return nil, fmt.Errorf("%s must be a postgres:// URL", EnvURL)
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	q := u.Query()
	for _, k := range []string{"user", "password", "dbname", "host", "port"} {
		q.Del(k)
	}
	s := &Server{
		Host:          cfg.Host,
		Port:          int(cfg.Port),
		superUser:     cfg.User,
		superPassword: cfg.Password,
		superDB:       cfg.Database,
		query:         q.Encode(),
	}
	if s.superDB == "" {
		s.superDB = s.superUser
	}
	// Binaries are optional here; they only serve PgBin.
	if dir, err := findBinDir(os.Getenv); err == nil {
		s.binDir = dir
	}
	if err := bootstrap(ctx, s); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	return s, nil
}
