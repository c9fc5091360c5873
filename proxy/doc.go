// Package proxy is the client-facing side of pgmux and its composition root: listeners,
// client sessions (startup, TLS, authentication, relaying), the choice of pool for each
// client, cancel routing, reload and graceful shutdown. Server connections themselves
// belong to package pool.
package proxy
