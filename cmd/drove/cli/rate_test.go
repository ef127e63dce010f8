package cli

import "testing"

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"100mbit": 12_500_000, "1gbit": 125_000_000, "800kbit": 100_000, "12MiB": 12 << 20,
		"512KiB": 512 << 10, "5MB": 5_000_000, "4096": 4096, "100Mbps": 12_500_000, "1.5MiB/s": 3 << 19,
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1mbit", "0", "mbit"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	f.Add("100mbit")
	f.Add("12MiB")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseRate(s); err == nil && n < 0 {
			t.Fatalf("%q → %d", s, n)
		}
	})
}
