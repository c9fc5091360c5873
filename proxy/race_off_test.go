//go:build !race

package proxy_test

// raceBuild: the race detector is off (race_on_test.go).
const raceBuild = false
