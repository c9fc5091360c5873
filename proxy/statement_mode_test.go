package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestStatementModeTransactionRefused: in statement pooling mode a transaction block
// ends the client with PgBouncer's error: FATAL 08P01 "transaction blocks not allowed in
// statement pooling mode" (its disconnect_client, whose errors are protocol violations),
// and a statement outside one runs.
func TestStatementModeTransactionRefused(t *testing.T) {
	h := startProxy(t, harnessOpts{mode: "statement"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ok := h.connect(t, "app", "app", true)
	var one int
	require.NoError(t, ok.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)

	c := h.connect(t, "app", "app", true)
	_, err := c.Exec(ctx, "BEGIN")
	if err == nil {
		_, err = c.Exec(ctx, "SELECT 1") // the refusal may come with the next request
	}
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "got %v", err)
	require.Equal(t, "FATAL", pe.Severity)
	require.Equal(t, "08P01", pe.Code)
	require.Equal(t, "transaction blocks not allowed in statement pooling mode", pe.Message)
}
