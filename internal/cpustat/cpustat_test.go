package cpustat

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// A /proc/stat of a 2-CPU machine (kernel 6.x), first lines.
const procStat = `cpu  576275 1586 325349 1860563 4246 0 40742 2120 0 0
cpu0 285918 807 159268 936814 1601 0 19696 1056 0 0
cpu1 290357 779 166080 923748 2645 0 21046 1064 0 0
intr 86966172 0 0
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Sample
	}{
		{"kernel 6", procStat, Sample{Busy: 576275 + 1586 + 325349 + 0 + 40742, Idle: 1860563 + 4246, Steal: 2120}},
		{"no steal field (before 2.6.11)", "cpu 10 20 30 40 50 60 70\n", Sample{Busy: 10 + 20 + 30 + 60 + 70, Idle: 40 + 50}},
		{"four fields (2.4)", "cpu 1 2 3 4", Sample{Busy: 6, Idle: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `want the aggregate "cpu" line, got ""`},
		{"cpu0 1 2 3 4\n", `want the aggregate "cpu" line, got "cpu0 1 2 3 4"`},
		{"intr 5\ncpu 1 2 3 4\n", `got "intr 5"`},
		{"cpu 1 2 3\n", "has 3 fields, want at least 4"},
		{"cpu 1 2 x 4\n", `field 3 (system) of the cpu line: "x" is not a tick count`},
		{"cpu 1 2 3 4 5 6 -7\n", `field 7 (softirq)`},
		{"cpu 18446744073709551615 1 0 0\n", "overflow"},
		{strings.Repeat("y", 100), `got "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"`},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "line 1: ") {
			t.Errorf("Parse(%q) = %v: the error should name the line", tc.in, err)
		}
	}
}

func TestBetween(t *testing.T) {
	a := Sample{Busy: 100, Idle: 100, Steal: 0}
	u, err := Between(a, Sample{Busy: 190, Idle: 105, Steal: 5})
	if err != nil {
		t.Fatal(err)
	}
	if u != (Usage{Busy: 0.9, Idle: 0.05, Steal: 0.05}) {
		t.Fatalf("Between = %+v, want busy 0.9, idle 0.05, steal 0.05", u)
	}
	for name, b := range map[string]Sample{
		"same moment":     a,
		"counters behind": {Busy: 99, Idle: 200},
	} {
		if _, err := Between(a, b); !errors.Is(err, ErrNoTicks) {
			t.Errorf("%s: Between = %v, want ErrNoTicks", name, err)
		}
	}
}

// TestReadThisMachine reads the real /proc/stat twice around some work:
// the machine's counters only grow, and the work shows as busy time.
func TestReadThisMachine(t *testing.T) {
	a, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy == 0 || a.Idle == 0 {
		t.Fatalf("Read = %+v: a running machine has busy and idle ticks", a)
	}
	var b Sample
	x := 1.0
	deadline := time.Now().Add(10 * time.Second)
	for { // spin until the tick counters move (USER_HZ is 100: 10 ms)
		for range 1_000_000 {
			x = math.Sqrt(x + 1)
		}
		if b, err = Read(); err != nil {
			t.Fatal(err)
		}
		if b.Busy > a.Busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy ticks did not move in 10 s of spinning: %+v then %+v", a, b)
		}
	}
	u, err := Between(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if u.Busy <= 0 || math.Abs(u.Busy+u.Idle+u.Steal-1) > 1e-9 {
		t.Fatalf("Between = %+v (x %v): want some busy time, fractions summing to 1", u, x)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(procStat))
	f.Add([]byte("cpu 1 2 3 4"))
	f.Add([]byte("cpu 1 2 3 4 5 6 7 8 9 10 11 12\n"))
	f.Add([]byte("cpu0 1 2 3 4"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Parse(in)
		if err != nil {
			if s != (Sample{}) {
				t.Fatalf("Parse(%q) failed (%v) but returned %+v", in, err, s)
			}
			return
		}
		if first, _, _ := strings.Cut(string(in), "\n"); !strings.Contains(first, "cpu") {
			t.Fatalf("Parse(%q) accepted a text whose first line is not the cpu line", in)
		}
		u, err := Between(Sample{}, s)
		if errors.Is(err, ErrNoTicks) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(u.Busy+u.Idle+u.Steal-1) > 1e-9 {
			t.Fatalf("Between(0, %+v) = %+v: fractions do not sum to 1", s, u)
		}
	})
}
