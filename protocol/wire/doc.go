// Package wire frames the PostgreSQL v3 protocol over a byte stream: it peeks a message's
// type and length, hands out whole small messages as views into its buffer, and forwards
// large ones in chunks without holding them in memory. It owns the read and write buffers
// of one connection and gives them back to a shared pool whenever the connection is idle,
// so an idle connection holds no buffer. It knows nothing of what the messages mean.
package wire
