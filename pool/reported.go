package pool

// Reported are four of the parameters a server reports (ParameterStatus) that the admin
// console lists per server connection (SHOW FDS, as PgBouncer lists its server sockets'
// own): client_encoding, standard_conforming_strings, DateStyle and TimeZone, "" for
// one the server has not reported.
type Reported struct {
	ClientEncoding, StdStrings, DateStyle, TimeZone string
}

// field is r's field for the parameter name, or nil for another parameter.
func (r *Reported) field(name string) *string {
	switch name {
	case "client_encoding":
		return &r.ClientEncoding
	case "standard_conforming_strings":
		return &r.StdStrings
	case "DateStyle":
		return &r.DateStyle
	case "TimeZone":
		return &r.TimeZone
	}
	return nil
}

// Reported returns the connection's Reported as the server last reported them. Any
// goroutine may call it: Params belongs to the connection's reader and lessee, so the
// console reads this copy, which is replaced whole on each change of one of the four.
func (c *Conn) Reported() Reported {
	if r := c.reported.Load(); r != nil {
		return *r
	}
	return Reported{}
}

// noteReported keeps the copy Reported reads in step with a ParameterStatus; only the
// goroutine that owns Params calls it, so one change at a time.
func (c *Conn) noteReported(name, value string) {
	var r Reported
	if old := c.reported.Load(); old != nil {
		r = *old
	}
	f := r.field(name)
	if f == nil || *f == value {
		return
	}
	*f = value
	c.reported.Store(&r)
}

// reportedOf is the Reported of the parameters a server reported at login.
func reportedOf(ps Params) *Reported {
	var r Reported
	for _, p := range ps {
		if f := r.field(p.Name); f != nil {
			*f = p.Value
		}
	}
	return &r
}
