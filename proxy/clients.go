package proxy

// clientTable is the registry of logged-in clients, by cancel key: a client's cancel PID
// is the number of its slot plus one, its secret key 32 random bits (register), so a
// CancelRequest finds its slot at once and must match the key there. A PostgreSQL
// backend's PID does not hide more; the key is what a canceller must know, as it was when
// PID and key were both drawn at random and a map held them. An idle client costs its slot
// (8 bytes, and the slice's spare room) where the map's entry cost 36 bytes
// (bench/README.md: idle memory). Slots given back are taken again, the latest first;
// the table never shrinks, as a Go map does not. Guarded by Server.mu.
type clientTable struct {
	slots []*Session // nil where free
	free  []uint32   // free slots below len(slots)
	n     int        // clients held
}

// add puts s in a slot and returns its cancel PID.
func (t *clientTable) add(s *Session) uint32 {
	var i uint32
	if k := len(t.free); k > 0 {
		i, t.free = t.free[k-1], t.free[:k-1]
		t.slots[i] = s
	} else {
		i = uint32(len(t.slots))
		t.slots = append(t.slots, s)
	}
	t.n++
	return i + 1
}

// remove takes s, whose cancel PID is pid, out of its slot; it does nothing when the slot
// is not s's.
func (t *clientTable) remove(s *Session, pid uint32) {
	if pid == 0 || int(pid) > len(t.slots) || t.slots[pid-1] != s {
		return
	}
	t.slots[pid-1] = nil
	t.free = append(t.free, pid-1)
	t.n--
}

// lookup returns the client with cancel PID pid and key key, or nil.
func (t *clientTable) lookup(pid, key uint32) *Session {
	if pid == 0 || int(pid) > len(t.slots) {
		return nil
	}
	if s := t.slots[pid-1]; s != nil && s.cancelKey == key {
		return s
	}
	return nil
}

// appendFrom appends to out the clients from slot from on, until out holds max of them,
// and returns the slot to go on from.
func (t *clientTable) appendFrom(out []*Session, from, max int) ([]*Session, int) {
	for ; from < len(t.slots) && len(out) < max; from++ {
		if s := t.slots[from]; s != nil {
			out = append(out, s)
		}
	}
	return out, from
}

// appendTo appends the clients to out.
func (t *clientTable) appendTo(out []*Session) []*Session {
	for _, s := range t.slots {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}
