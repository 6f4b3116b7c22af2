// Package memlimit sets the Go runtime's soft memory limit so the garbage
// collector works harder before a container's hard limit kills the process.
package memlimit

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// headroom is the share of the limit left to the runtime's own overhead and
// to memory outside the Go heap (stacks, cgo-free SQLite pages, buffers).
const headroom = 0.1

// unlimited is larger than any machine's memory.
const unlimited = 1 << 50

// Apply sets the memory limit from maxMB when it is positive, otherwise from
// the cgroup limit, and returns the limit set in bytes (0 when none was found).
// A GOMEMLIMIT in the environment wins over both.
func Apply(maxMB int, log *slog.Logger) int64 {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		limit := debug.SetMemoryLimit(-1)
		log.Info("memory limit from GOMEMLIMIT", "limit_mb", limit>>20)
		return limit
	}
	if maxMB > 0 {
		limit := int64(float64(int64(maxMB)<<20) * (1 - headroom))
		debug.SetMemoryLimit(limit)
		log.Info("memory limit from MAX_MEMORY_MB", "max_mb", maxMB, "limit_mb", limit>>20)
		return limit
	}
	limit, err := memlimit.Set(
		memlimit.WithRatio(1-headroom),
		memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err == nil && limit >= unlimited {
		// cgroup "max" comes back as a huge number: no real limit.
		debug.SetMemoryLimit(math.MaxInt64)
		limit = 0
	}
	if err != nil || limit <= 0 {
		log.Info("no container memory limit found; set MAX_MEMORY_MB to bound memory", "reason", errString(err), "help", troubleshoot.Memory)
		return 0
	}
	log.Info("memory limit from container cgroup", "limit_mb", limit>>20)
	return limit
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return fmt.Sprint(err)
}
