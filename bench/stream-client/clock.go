package main

import "golang.org/x/sys/unix"

// monoNow reads CLOCK_MONOTONIC in nanoseconds: the clock Node's process.hrtime.bigint()
// reads in the fake upstream, so the `t<ns>` stamped into each chunk compares directly with
// the time this client receives it (one machine, one clock).
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
