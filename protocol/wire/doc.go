// Package wire frames the PostgreSQL v3 protocol over a byte stream: it peeks a message's
// type and length, hands out whole small messages as views into its buffer, and forwards
// large ones in chunks without holding them in memory. It owns the read and write buffers
// of one connection and gives them back to a shared pool whenever the connection is idle,
// so an idle connection holds no buffer. It knows nothing of what the messages mean.
//
// # The I/O path under the race detector
//
// Over a plain TCP or Unix socket, Reader and Writer read and write the descriptor inside
// syscall.RawConn callbacks (reader.go readReady, writer.go). Race builds run that same
// code; the one difference is the syscall shim: rawio_linux.go (linux, !race) calls
// read(2)/write(2) with syscall.RawSyscall, rawio_other.go (race builds and other
// systems) calls syscall.Read/syscall.Write, which carry the annotations that let the
// race detector see a socket write and the peer's read as synchronisation; those two
// files declare nothing else (TestRawIOIsOnlyTheShim). So `go test
// -race` exercises the descriptor path that ships (TestReaderSocket, TestWriterSocket and
// every integration test), and `make test` runs ./protocol/wire, ./proxy, ./test/e2e and
// ./test/faults once more without -race for the raw calls themselves.
package wire
