package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseRate reads a bandwidth as tc and people write it, into bytes per
// second: "100mbit", "1gbit", "800kbit" (bits, SI), "12MiB", "512KiB",
// "1GiB" (bytes, binary), "5MB" (bytes, SI) or a plain number of bytes.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	if strings.HasSuffix(t, "bps") { // 100mbps: megabits
		t = strings.TrimSuffix(t, "bps") + "bit"
	}
	units := []struct {
		suffix string
		mul    float64
	}{
		{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8},
		{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
		{"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1},
	}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mul = strings.TrimSuffix(t, u.suffix), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(v > 0) || v*mul >= 1<<62 {
		return 0, fmt.Errorf("rate %q: want a positive number with a unit such as 100mbit or 12MiB", s)
	}
	return int64(v * mul), nil
}
