package proxy

// growLoginStack makes the runtime grow the calling goroutine's stack once, now, while it
// is shallow, to the size a client login reaches anyway. A goroutine starts with a small
// stack (2 KB, or the runtime's running average) and a login, deep in SCRAM and the
// socket's read path, outgrew it twice (2 → 4 → 8 KB); each growth copied the stack and
// walked every frame's tables (runtime.pcvalue, adjustframe): about 53,000 instructions,
// a fifth of pgmux's cost per login under pgbench -C (callgrind, bench/README.md). One
// growth from a single shallow frame costs a small part of that, and the login then needs
// no other. The stack is the one the login would have grown to: idle memory is unchanged
// (a parked client keeps no goroutine), and the garbage collector shrinks stacks that stay
// mostly unused.
//
//go:noinline
func growLoginStack() {
	var frame [loginStackFrame]byte
	if stackFrameSink { // never true: keeps frame, so the compiler cannot drop it
		for i := range frame {
			frame[i] = byte(i) + stackSinkByte
		}
		stackSinkByte = frame[len(frame)/2]
	}
}

// loginStackFrame is the frame growLoginStack asks for: more than 4 KB, so that a stack
// of 2 or 4 KB grows straight to 8 KB (the runtime doubles until the frame fits).
const loginStackFrame = 5 << 10

var (
	stackFrameSink bool
	stackSinkByte  byte
)
