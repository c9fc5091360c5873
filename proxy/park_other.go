//go:build !linux

package proxy

import (
	"net"

	"go.uber.org/zap"
)

// parker is Linux-only; elsewhere idle clients keep their goroutines.
type parker struct{}

func newParker(*zap.Logger, <-chan struct{}) *parker { return nil }
func (p *parker) park(*Session, int32) bool          { return false }
func (p *parker) unpark(*Session) bool               { return false }

func (s *Session) detachLocked() bool          { return false }
func (s *Session) reattach()                   {}
func (s *Session) closeRawLocked() bool        { return false }
func (s *Session) writeRawLocked([]byte) bool  { return false }
func (s *Session) rawAddrLocked(bool) net.Addr { return nil }
