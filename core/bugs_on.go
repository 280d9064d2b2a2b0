//go:build detcdbugs

package core

const bugsEnabled = true
