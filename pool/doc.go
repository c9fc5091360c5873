// Package pool owns server connections: dialing and logging in to PostgreSQL, one bounded
// pool per key (database, user) with FIFO waiters, reserve connections, lifetimes, idle
// timeouts, health checks before reuse and reset queries on release, and connections
// dedicated to one caller, never reused (dedicated.go: replication). One reader at a time
// reads a server connection's socket: its reader goroutine, which runs the lessee's Pump
// while the connection is leased, or an event loop it handed the reading to
// (loopread.go), while which the connection has no goroutine. The package knows nothing
// of clients, SQL policy or configuration files.
package pool
