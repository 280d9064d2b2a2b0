//go:build !detcdbugs

package planted

// Enabled is false outside bug builds, so every planted bug compiles away.
const Enabled = false
