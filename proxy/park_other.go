//go:build !linux

package proxy

import (
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
)

// parker is Linux-only; elsewhere idle clients keep their goroutines.
type parker struct{}

func newParker(*zap.Logger, <-chan struct{}) *parker { return nil }

// newLoops has none to make here.
func newLoops(*zap.Logger, <-chan struct{}, int) []*parker { return nil }
func (p *parker) park(*Session, int32) bool                { return false }
func (p *parker) unpark(*Session) bool                     { return false }

// The client loop needs the parker (clientloop.go): never reached here (canPark is false).
func (p *parker) loopPark(*Session, int32, bool) bool { return false }
func (p *parker) leaveLoop(*Session)                  {}
func (p *parker) moveOut(*Session, int32)             {}
func (p *parker) clients() int                        { return 0 }
func (p *parker) waitsOnLoop(*Session) bool           { return false }
func (p *parker) now() time.Time                      { return time.Time{} }
func (p *parker) post(*Session, *pool.Conn, error)    {}
func (p *parker) Adopt(c *pool.Conn)                  { c.HandBack() }
func (p *parker) Recall(c *pool.Conn)                 { c.HandBack() }

// parkServer: the loop is never on here (pumpsOnLoop is false).
func parkServer(*pool.Conn, *parker) bool { return false }

func (s *Session) detachLocked() bool          { return false }
func (s *Session) reattach()                   {}
func (s *Session) closeRawLocked() bool        { return false }
func (s *Session) writeRawLocked([]byte) bool  { return false }
func (s *Session) rawAddrLocked(bool) net.Addr { return nil }

// goneEvents: no loop here, so no event says a client's peer left.
const goneEvents = 0
