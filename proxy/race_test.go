//go:build race

package proxy

// raceEnabled: a -race build, whose sync.Pool drops a share of what it is given at random,
// so that pooled buffers are allocated again now and then.
const raceEnabled = true
