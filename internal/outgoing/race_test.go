//go:build race

package outgoing

const raceEnabled = true
