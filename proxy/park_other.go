//go:build !linux

package proxy

import "go.uber.org/zap"

// parker is Linux-only; elsewhere idle clients keep their goroutines.
type parker struct{}

func newParker(*zap.Logger, <-chan struct{}) *parker { return nil }
func (p *parker) park(*Session) bool                 { return false }
func (p *parker) unpark(*Session) bool               { return false }
