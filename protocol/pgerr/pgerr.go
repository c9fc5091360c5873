// Package pgerr builds the ErrorResponse and NoticeResponse messages pgmux sends to
// clients, with PostgreSQL's SQLSTATE codes. It owns no policy about when to send them.
package pgerr

import (
	"fmt"

	"github.com/pgmux/pgmux/protocol/wire"
)

// SQLSTATE codes pgmux uses; they match PostgreSQL's meaning.
const (
	ProtocolViolation        = "08P01"
	ConnectionFailure        = "08006"
	ConnectionException      = "08000"
	CannotConnectNow         = "57P03"
	ReadOnlySQLTransaction   = "25006"
	AdminShutdown            = "57P01"
	QueryCanceled            = "57014"
	InvalidPassword          = "28P01"
	InvalidAuthorization     = "28000"
	InvalidCatalogName       = "3D000"
	TooManyConnections       = "53300"
	FeatureNotSupported      = "0A000"
	InvalidParameterValue    = "22023"
	ProgramLimitExceeded     = "54000"
	CharacterNotInRepertoire = "22021"
	IdleSessionTimeout       = "57P05"
	IdleInTransactionTimeout = "25P03"
	TransactionTimeout       = "25P04"
	InternalError            = "XX000"
	ActiveSQLTransaction     = "25001"
	ObjectNotInPrerequisite  = "55000"
	DuplicatePreparedStmt    = "42P05"
	UndefinedPreparedStmt    = "26000"
	SyntaxError              = "42601"
	InsufficientPrivilege    = "42501"
	Warning                  = "01000" // a NoticeResponse of severity WARNING
)

// Severity values.
const (
	SeverityError   = "ERROR"
	SeverityFatal   = "FATAL"
	SeverityWarning = "WARNING" // for a NoticeResponse (AppendNotice)
)

// Error is a PostgreSQL error a client will see.
type Error struct {
	Severity string
	Code     string
	Message  string
	Detail   string
	Hint     string
}

// New returns an ERROR-severity error.
func New(code, format string, args ...any) *Error {
	return &Error{Severity: SeverityError, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fatal returns a FATAL-severity error: the connection closes after it is sent.
func Fatal(code, format string, args ...any) *Error {
	return &Error{Severity: SeverityFatal, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string { return e.Severity + ": " + e.Message + " (SQLSTATE " + e.Code + ")" }

// AtSeverity returns a copy of e at severity sev: a server's error passed on as the
// client's ERROR, or as the FATAL that ends its connection.
func (e *Error) AtSeverity(sev string) *Error {
	c := *e
	c.Severity = sev
	return &c
}

// WithDetail sets the DETAIL field.
func (e *Error) WithDetail(format string, args ...any) *Error {
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// WithHint sets the HINT field.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// Append appends the error as an ErrorResponse message.
func (e *Error) Append(dst []byte) []byte { return e.append(dst, 'E') }

// AppendNotice appends the error's fields as a NoticeResponse message.
func (e *Error) AppendNotice(dst []byte) []byte { return e.append(dst, 'N') }

func (e *Error) append(dst []byte, typ byte) []byte {
	dst, s := wire.Begin(dst, typ)
	field := func(code byte, v string) {
		if v != "" {
			dst = append(dst, code)
			dst = wire.AppendString(dst, v)
		}
	}
	field('S', e.Severity)
	field('V', e.Severity)
	field('C', e.Code)
	field('M', e.Message)
	field('D', e.Detail)
	field('H', e.Hint)
	dst = append(dst, 0)
	return wire.Finish(dst, s)
}

// Parse decodes an ErrorResponse or NoticeResponse body.
func Parse(body []byte) (*Error, error) {
	e := &Error{}
	err := wire.Fields(body, func(code byte, v []byte) {
		switch code {
		case 'S':
			if e.Severity == "" {
				e.Severity = string(v)
			}
		case 'V':
			e.Severity = string(v)
		case 'C':
			e.Code = string(v)
		case 'M':
			e.Message = string(v)
		case 'D':
			e.Detail = string(v)
		case 'H':
			e.Hint = string(v)
		}
	})
	return e, err
}
