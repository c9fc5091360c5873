package proxy

// HeldNotesMax is heldNotesMax: the bytes of notifications a client's queue holds for
// RESUME before the shared listener stops reading.
const HeldNotesMax = heldNotesMax

// HeldNotesForTest returns the bytes of notifications waiting in the fullest client's
// queue (notifyBox), and in all of them.
func HeldNotesForTest(s *Server) (most, total int) {
	for _, sess := range s.Sessions() {
		b := sess.notes.Load()
		if b == nil {
			continue
		}
		n := 0
		b.mu.Lock()
		for _, m := range b.q {
			n += len(m)
		}
		b.mu.Unlock()
		most, total = max(most, n), total+n
	}
	return most, total
}
