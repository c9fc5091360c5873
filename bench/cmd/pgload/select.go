package main

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// runSelect runs -sql on every client back to back. The default SELECT 1 is checked to
// return 1; any other statement has its rows read and counted. With -unique every text
// differs (a numbered comment after it): no two statements are the same.
func runSelect(r *runner) (outcome, error) {
	conns, err := r.connectPgx(r.o.clients, r.o.mode)
	if err != nil {
		return outcome{}, err
	}
	checked := strings.EqualFold(strings.TrimSpace(r.o.sql), "SELECT 1")
	ctx, cancel := r.phase()
	defer cancel()
	var seq atomic.Uint64
	secs := r.drive(ctx, conns, r.o.mode, func(ctx context.Context, _ int, c *pgx.Conn) error {
		sql := r.o.sql
		if r.o.unique {
			sql += " /* " + strconv.FormatUint(seq.Add(1), 10) + " */"
		}
		if checked {
			var one int
			if err := c.QueryRow(ctx, sql).Scan(&one); err != nil {
				return err
			}
			if one != 1 {
				return wrongf("SELECT 1 returned %d", one)
			}
			return nil
		}
		rows, err := c.Query(ctx, sql)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return rows.Err()
	})
	return outcome{seconds: secs, extra: []field{{"exec_mode", r.o.execMode}}}, nil
}
