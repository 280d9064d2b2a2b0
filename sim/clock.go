package sim

// clock is a member's local clock: it drifts from virtual time by a rate
// in parts per million and may jump. Only ticks come from it, so a jump
// moves the next tick, never produces a burst of ticks: like time.Ticker,
// which drops ticks it could not deliver.
type clock struct {
	driftPPM int64
	// offset is local time minus virtual time at virtual time 0, in µs.
	offset int64
	// nextTick is the local time of the next tick.
	nextTick int64
}

// local is the local time at virtual time v.
func (c *clock) local(v int64) int64 { return c.offset + v + v*c.driftPPM/1_000_000 }

// virtual is the virtual time at which the local clock reads l.
func (c *clock) virtual(l int64) int64 { return (l - c.offset) * 1_000_000 / (1_000_000 + c.driftPPM) }

// scheduleNext returns the virtual time of the next tick after now.
func (c *clock) scheduleNext(now, tickUs int64) int64 {
	l := c.local(now)
	if c.nextTick <= l {
		c.nextTick = l + tickUs
	}
	v := c.virtual(c.nextTick)
	if v <= now {
		v = now + 1
	}
	return v
}

// ticked advances the tick schedule after a tick at virtual time now.
func (c *clock) ticked(now, tickUs int64) {
	c.nextTick += tickUs
	if l := c.local(now); c.nextTick <= l {
		c.nextTick = l + tickUs // ticks that could not run are dropped
	}
}

// startTicker starts the ticks of a member (re)starting at virtual time
// now: the first comes a tick after now, whatever the clock reads, as a
// new time.Ticker's does. (Left at a former incarnation's schedule, or at
// 0 with a clock set behind, the first tick waited up to the clock's
// offset: seconds in which the member never ticked, and its leases never
// aged, which the lease check took for a lease that gained time.)
func (c *clock) startTicker(now int64) { c.nextTick = c.local(now) }

// jump moves the local clock by d microseconds.
func (c *clock) jump(d int64) { c.offset += d }
