// Package pool owns server connections: dialing and logging in to PostgreSQL, one bounded
// pool per key (database, user) with FIFO waiters, reserve connections, lifetimes, idle
// timeouts, health checks before reuse and reset queries on release. Each server
// connection has one goroutine that alone reads its socket; while a connection is leased
// that goroutine runs the lessee's Pump. The package knows nothing of clients, SQL policy
// or configuration files.
package pool
