package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
)

// clientTable is the registry of logged-in clients, by cancel key. A client's secret key
// is 32 random bits (register) and its cancel PID is the number of its slot hidden under
// that key: the slot XOR a mask the key gives through AES under a key of the table's own,
// drawn at first use and never shown. A CancelRequest finds its slot at once from the
// two (and must match the key there); a client sees a PID as random as PgBouncer's, which
// says nothing of its slot, of how many clients there are, or of the PID the next login
// gets. Slot numbers given out as PIDs (1, 2, 3...) told all three, and a slot taken
// again gave its next client the same PID. The pair is unique, as slots are; two clients
// may share a PID (one chance in 2^32 a pair), as they may at PgBouncer.
//
// An idle client costs its slot (8 bytes, and the slice's spare room) where a map's entry
// cost 36 bytes (bench/README.md: idle memory). Slots given back are taken again, the
// latest first; the table never shrinks, as a Go map does not. Guarded by Server.mu.
type clientTable struct {
	slots []*Session // nil where free
	free  []uint32   // free slots below len(slots)
	n     int        // clients held
	hide  cipher.Block
	blk   [aes.BlockSize]byte // hide's scratch, so that a mask allocates nothing
}

// mask is what a client's PID is its slot XOR: the first 32 bits of AES of its key.
func (t *clientTable) mask(key uint32) uint32 {
	if t.hide == nil {
		var k [16]byte
		_, _ = rand.Read(k[:])
		t.hide, _ = aes.NewCipher(k[:]) // 16 bytes: no error
	}
	t.blk = [aes.BlockSize]byte{}
	binary.BigEndian.PutUint32(t.blk[:], key)
	t.hide.Encrypt(t.blk[:], t.blk[:])
	return binary.BigEndian.Uint32(t.blk[:])
}

// add puts s, whose key is set, in a slot and returns its cancel PID; 0 (no client's PID)
// when the free slot and s's key would make 0, and then s is not added: the caller draws
// another key.
func (t *clientTable) add(s *Session) uint32 {
	i := uint32(len(t.slots))
	k := len(t.free)
	if k > 0 {
		i = t.free[k-1]
	}
	pid := i ^ t.mask(s.cancelKey)
	if pid == 0 {
		return 0
	}
	if k > 0 {
		t.free = t.free[:k-1]
		t.slots[i] = s
	} else {
		t.slots = append(t.slots, s)
	}
	t.n++
	return pid
}

// slot returns the slot of cancel PID pid and key, or -1 when there is none such.
func (t *clientTable) slot(pid, key uint32) int {
	i := pid ^ t.mask(key)
	if pid == 0 || uint64(i) >= uint64(len(t.slots)) {
		return -1
	}
	return int(i)
}

// remove takes s, whose cancel PID is pid, out of its slot; it does nothing when the slot
// is not s's.
func (t *clientTable) remove(s *Session, pid uint32) {
	i := t.slot(pid, s.cancelKey)
	if i < 0 || t.slots[i] != s {
		return
	}
	t.slots[i] = nil
	t.free = append(t.free, uint32(i))
	t.n--
}

// lookup returns the client with cancel PID pid and key key, or nil.
func (t *clientTable) lookup(pid, key uint32) *Session {
	if i := t.slot(pid, key); i >= 0 {
		if s := t.slots[i]; s != nil && s.cancelKey == key {
			return s
		}
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
