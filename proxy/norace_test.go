//go:build !race

package proxy

// raceEnabled: a -race build (race_test.go).
const raceEnabled = false
