package config

import (
	"errors"
	"fmt"
)

// ErrUnknownSetting is returned by Set for a key that neither pgmux nor PgBouncer knows.
var ErrUnknownSetting = errors.New("unknown setting")

// ErrUnsupportedSetting is returned by Set for a PgBouncer key that pgmux does not implement.
var ErrUnsupportedSetting = errors.New("setting is not supported by pgmux")

// LineError reports a value that made a file refuse to load. It prints as
// "file:line: key: reason" (or "file:line: reason" when no key is involved).
type LineError struct {
	File   string
	Line   int
	Key    string
	Reason string
}

// Error implements error.
func (e *LineError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Reason)
}

// lineErr builds a *LineError from an error's text.
func lineErr(file string, line int, key string, err error) *LineError {
	return &LineError{File: file, Line: line, Key: key, Reason: err.Error()}
}
