package agent

import (
	"testing"
	"time"
)

func TestSeedLedger(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p0, p1 := pieceRef{"b", 0}, pieceRef{"b", 1}
	type ask struct {
		who  string
		ref  pieceRef
		at   time.Duration
		want bool
	}
	for _, c := range []struct {
		name string
		asks []ask
	}{
		{"every piece once first", []ask{
			{"a", p0, 0, true},
			{"b", p0, 0, false}, // p1 has gone out fewer times
			{"b", p1, 0, true},
			{"c", p0, 0, true}, // every piece out once: a second round
			{"d", p0, 0, false},
		}},
		{"units of an admitted piece", []ask{
			{"a", p0, 0, true},
			{"a", p0, time.Millisecond, true},
			{"b", p1, 0, true},
			{"b", p1, time.Second, true},
		}},
		{"after the window anything goes", []ask{
			{"a", p0, 0, true},
			{"b", p0, seedWindow - time.Millisecond, false},
			{"b", p0, seedWindow + time.Millisecond, true},
			{"c", p0, seedWindow + 2*time.Millisecond, false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newSeedLedger(2, seedWindow)
			for i, a := range c.asks {
				if got := l.admit(a.who, a.ref, t0.Add(a.at)); got != a.want {
					t.Fatalf("ask %d (%s for %v at %s) = %v, want %v", i, a.who, a.ref, a.at, got, a.want)
				}
			}
		})
	}
}

func TestRequester(t *testing.T) {
	for in, want := range map[string]string{
		"_INBOX.abc.def": "_INBOX.abc",
		"_INBOX.abc":     "_INBOX",
		"plain":          "plain",
		"":               "",
	} {
		if got := requester(in); got != want {
			t.Errorf("requester(%q) = %q, want %q", in, got, want)
		}
	}
}
