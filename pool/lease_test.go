package pool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type boxed struct{ box *LeaseBox }

func (b *boxed) Pump(*Conn) error    { return nil }
func (b *boxed) LeaseBox() *LeaseBox { return b.box }

type unboxed struct{ _ byte }

func (u *unboxed) Pump(*Conn) error { return nil }

// A Lessee with its own LeaseBox is leased without an allocation (a client session leases
// once per transaction), and LeasedBy tells its leases by the box's pointer.
func TestLeaseThroughBox(t *testing.T) {
	p, c := &Pool{}, &Conn{}
	l := &boxed{}
	l.box = NewLeaseBox(l)
	require.Zero(t, testing.AllocsPerRun(100, func() { p.lease(c, l); c.unlease() }))
	require.True(t, p.lease(c, l))
	require.True(t, c.LeasedBy(l.box))
	require.Equal(t, Lessee(l), c.Lessee())

	other := &boxed{}
	other.box = NewLeaseBox(other)
	require.False(t, c.LeasedBy(other.box))

	require.False(t, p.lease(c, other), "a leased connection is not leased again")
	require.True(t, c.LeasedBy(l.box))

	// Without a box (or with a nil one) the lease still works, with its own box.
	c.unlease()
	u := &unboxed{}
	require.True(t, p.lease(c, u))
	require.Equal(t, Lessee(u), c.Lessee())
	require.False(t, c.LeasedBy(l.box))
	c.unlease()
	nb := &boxed{}
	require.True(t, p.lease(c, nb))
	require.Equal(t, Lessee(nb), c.Lessee())

	// A connection whose reader found it broken while idle is leased no more.
	c.unlease()
	c.lessee.Store(lesseeGone)
	require.False(t, p.lease(c, l))
	require.Nil(t, c.Lessee())
}
