//go:build linux

package proxy

// LoginWorkersMade counts the login coroutines made for logins on the client loops
// (loginworker_linux.go), in the whole process.
func LoginWorkersMade() uint64 { return loginWorkersMade.Load() }

// LoopAccepts counts the clients accepted on a client loop (acceptloop_linux.go), in the
// whole process.
func LoopAccepts() uint64 { return loopAccepts.Load() }
