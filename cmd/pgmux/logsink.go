package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgmux/pgmux/config"
)

// logSink is the reloadable part of the logger: the level (--log-level, lowered to debug
// by verbose) and the logfile, both re-read on every reload as the settings table says.
// The file is reopened on each reload even when its name is unchanged, so that a rotated
// log file is let go, as PgBouncer does on SIGHUP.
type logSink struct {
	level zap.AtomicLevel
	base  zapcore.Level // from --log-level

	mu   sync.Mutex
	file *os.File
}

// newLogSink opens cfg's logfile and sets the level for cfg.
func newLogSink(cfg *config.Config, level string) (*logSink, error) {
	base, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	l := &logSink{level: zap.NewAtomicLevel(), base: base}
	if err := l.apply(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// apply sets the level from verbose and opens logfile anew (or stops writing to a file
// when logfile is empty). On error nothing changes.
func (l *logSink) apply(cfg *config.Config) error {
	var f *os.File
	if cfg.LogFile != "" {
		var err error
		if f, err = os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640); err != nil {
			return fmt.Errorf("logfile: %w", err)
		}
	}
	lvl := l.base
	if cfg.Verbose > 0 && lvl > zapcore.DebugLevel {
		lvl = zapcore.DebugLevel
	}
	l.mu.Lock()
	old := l.file
	l.file = f
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	l.level.SetLevel(lvl)
	return nil
}

// Write writes to the current logfile, if any.
func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return len(p), nil
	}
	return l.file.Write(p)
}

// Sync flushes the current logfile.
func (l *logSink) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	return l.file.Sync()
}

// newLogger logs to stderr and to the logfile, at the sink's level; JSON unless stderr is
// a terminal and no logfile is set.
func newLogger(cfg *config.Config, level string, stderr io.Writer) (*zap.Logger, *logSink, error) {
	sink, err := newLogSink(cfg, level)
	if err != nil {
		return nil, nil, err
	}
	isTTY := false
	if f, ok := stderr.(*os.File); ok && cfg.LogFile == "" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			isTTY = true
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if isTTY {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	out := zapcore.NewMultiWriteSyncer(zapcore.AddSync(stderr), sink)
	return zap.New(zapcore.NewCore(enc, out, sink.level)), sink, nil
}
