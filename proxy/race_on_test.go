//go:build race

package proxy_test

// raceBuild: the race detector is on; its sync.Pool drops a share of what is put back,
// so a test of buffer reuse expects less of it.
const raceBuild = true
