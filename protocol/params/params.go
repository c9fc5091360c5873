// Package params holds Params, the small ordered set of run-time parameters (name and
// value) that a server reported at login, a client sent in its startup packet, or a
// session set since. It is a leaf: the pool keeps a server's in it, and the link's pure
// rules (proxy/link) compute with them without depending on the pool.
package params

// Param is one run-time parameter and its value.
type Param struct{ Name, Value string }

// Params is a small ordered set of parameters; lookups are linear, which beats a map at
// the handful of entries a session carries.
type Params []Param

// Get returns the value of name.
func (ps Params) Get(name string) (string, bool) {
	for i := range ps {
		if ps[i].Name == name {
			return ps[i].Value, true
		}
	}
	return "", false
}

// Set sets name to value and reports whether it changed.
func (ps *Params) Set(name, value string) bool {
	for i := range *ps {
		if (*ps)[i].Name == name {
			if (*ps)[i].Value == value {
				return false
			}
			(*ps)[i].Value = value
			return true
		}
	}
	*ps = append(*ps, Param{name, value})
	return true
}

// Delete removes name.
func (ps *Params) Delete(name string) {
	for i := range *ps {
		if (*ps)[i].Name == name {
			*ps = append((*ps)[:i], (*ps)[i+1:]...)
			return
		}
	}
}

// Clone returns a copy.
func (ps Params) Clone() Params { return append(Params(nil), ps...) }
