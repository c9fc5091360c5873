package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialer logs server connections in with pgconn (SCRAM and friends as the connection
// string and PGPASSWORD say) and hands back the raw connection after ReadyForQuery.
type dialer struct {
	connString string
}

// dial returns a logged-in server connection and the ParameterStatus values it reported.
func (d dialer) dial(ctx context.Context) (net.Conn, map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, d.connString)
	if err != nil {
		return nil, nil, fmt.Errorf("server login: %w", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("server hijack: %w", err)
	}
	if tc, ok := hc.Conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return hc.Conn, hc.ParameterStatuses, nil
}
