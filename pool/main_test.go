package pool_test

import (
	"os"
	"testing"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
