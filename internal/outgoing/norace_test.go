//go:build !race

package outgoing

const raceEnabled = false
