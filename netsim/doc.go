// Package netsim is the simulated network between members: per-link
// latency, bandwidth, loss, duplication and reordering, symmetric and one-way
// partitions, all decided by a PRNG the simulator hands in, so a run
// replays exactly from its seed. It only decides the fate of messages; the
// simulator's event queue carries them.
//
// Time is virtual, in microseconds. Probabilities are integers in
// per-mille so that no floating point reaches a decision.
package netsim
