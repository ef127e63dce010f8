// Package cpustat says how busy this machine's CPUs were between two
// moments, from the aggregate "cpu" line of /proc/stat. Benchmarks use it
// to tell a run that measured drove from one that measured the machine: a
// lab of dozens of agents on a few cores can run out of CPU, and its times
// then say more about the host than about the protocol.
package cpustat

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
)

// Sample is the machine's CPU time since boot, summed over all CPUs, in
// clock ticks.
type Sample struct {
	Busy  uint64 // user, nice, system, irq, softirq (guest time is inside user and nice)
	Idle  uint64 // idle and iowait
	Steal uint64 // a virtual CPU's time the hypervisor gave to others
}

// Usage is what the CPUs did between two samples, as fractions of all
// their time (Busy + Idle + Steal = 1).
type Usage struct {
	Busy, Idle, Steal float64
}

// ErrNoTicks: the two samples are the same moment, or the second is older.
var ErrNoTicks = errors.New("no CPU time passed between the samples")

// fields of the cpu line, in /proc/stat's order (proc(5)). Kernels before
// 2.6.11 stop after softirq; later fields (guest, guest_nice) are inside
// user and nice and are not read.
var fields = [...]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// minFields is how many of them every kernel drove runs on writes.
const minFields = 4 // user nice system idle

// Read samples /proc/stat.
func Read() (Sample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Sample{}, err
	}
	s, err := Parse(b)
	if err != nil {
		return Sample{}, fmt.Errorf("/proc/stat: %w", err)
	}
	return s, nil
}

// Parse reads the first line of a /proc/stat text, which must be the
// aggregate "cpu" line.
func Parse(b []byte) (Sample, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) == 0 || string(f[0]) != "cpu" {
		return Sample{}, fmt.Errorf("line 1: want the aggregate \"cpu\" line, got %q", truncate(line))
	}
	f = f[1:]
	if len(f) < minFields {
		return Sample{}, fmt.Errorf("line 1: the cpu line has %d fields, want at least %d (user nice system idle)", len(f), minFields)
	}
	var v [len(fields)]uint64
	for i := range min(len(f), len(fields)) {
		n, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("line 1: field %d (%s) of the cpu line: %q is not a tick count", i+1, fields[i], truncate(f[i]))
		}
		v[i] = n
	}
	busy, ok1 := sum(v[0], v[1], v[2], v[5], v[6]) // user nice system irq softirq
	idle, ok2 := sum(v[3], v[4])                   // idle iowait
	if !ok1 || !ok2 {
		return Sample{}, errors.New("line 1: the cpu line's tick counts overflow 64 bits")
	}
	return Sample{Busy: busy, Idle: idle, Steal: v[7]}, nil
}

// sum adds tick counts; ok is false if the sum overflows.
func sum(v ...uint64) (s uint64, ok bool) {
	for _, x := range v {
		var carry uint64
		if s, carry = bits.Add64(s, x, 0); carry != 0 {
			return 0, false
		}
	}
	return s, true
}

// Between is the usage from a to b (b taken after a).
func Between(a, b Sample) (Usage, error) {
	if b.Busy < a.Busy || b.Idle < a.Idle || b.Steal < a.Steal {
		return Usage{}, ErrNoTicks
	}
	busy, idle, steal := b.Busy-a.Busy, b.Idle-a.Idle, b.Steal-a.Steal
	total, ok := sum(busy, idle, steal)
	if !ok || total == 0 {
		return Usage{}, ErrNoTicks
	}
	t := float64(total)
	return Usage{Busy: float64(busy) / t, Idle: float64(idle) / t, Steal: float64(steal) / t}, nil
}

// truncate keeps an error message short when the input is not /proc/stat.
func truncate(b []byte) []byte {
	const limit = 40
	if len(b) > limit {
		return b[:limit]
	}
	return b
}
