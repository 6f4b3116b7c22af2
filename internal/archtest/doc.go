// Package archtest holds the tests that keep docs/ARCHITECTURE.md's map of
// the packages true: which package may import which. It has no code; the
// product never imports it.
package archtest
