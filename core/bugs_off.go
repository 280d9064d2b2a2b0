//go:build !detcdbugs

package core

// bugsEnabled is false outside bug builds, so every planted bug's code
// compiles away. Build with -tags detcdbugs to plant them (the simulator's
// tests do, to prove the checkers catch them).
const bugsEnabled = false
