//go:build detcdbugs

package planted

// Enabled is true in builds that can plant bugs.
const Enabled = true
