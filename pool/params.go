package pool

import "github.com/pgmux/pgmux/protocol/params"

// Param and Params are package params' (a leaf package, so that the link's pure rules in
// proxy/link can compute with a server's settings without importing the pool).
type (
	Param  = params.Param
	Params = params.Params
)
