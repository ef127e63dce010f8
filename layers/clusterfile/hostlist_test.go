package clusterfile

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseHostList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "10.0.0.1", want: []string{"10.0.0.1"}},
		{in: " 10.0.0.1 , 10.0.0.2,", want: []string{"10.0.0.1", "10.0.0.2"}},
		{in: "10.0.0.1,,10.0.0.2", want: []string{"10.0.0.1", "10.0.0.2"}},
		{in: "10.0.0.1-10.0.0.3", want: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{in: "10.0.0.5 - 10.0.0.5", want: []string{"10.0.0.5"}},
		{in: "10.0.0.254-10.0.1.1", want: []string{"10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"}},
		{in: "10.0.0.1-10.0.0.2,10.0.1.7", want: []string{"10.0.0.1", "10.0.0.2", "10.0.1.7"}},
		{in: "10.0.0.1,10.0.0.1", want: []string{"10.0.0.1", "10.0.0.1"}},
		{in: "fd00::1", want: []string{"fd00::1"}},
		{in: "FD00:0::0:1,::1", want: []string{"fd00::1", "::1"}},
		{in: "::ffff:10.0.0.1", want: []string{"10.0.0.1"}},
		{in: "255.255.255.255-255.255.255.255", want: []string{"255.255.255.255"}},
		{in: "10.0.0.x", wantErr: `"10.0.0.x" is not an IP address`},
		{in: "node1", wantErr: `"node1" is not an IP address`},
		{in: "10.0.0.1:22", wantErr: `"10.0.0.1:22" is not an IP address`},
		{in: "10.0.0.0/24", wantErr: `"10.0.0.0/24" is not an IP address`},
		{in: "fe80::1%eth0", wantErr: `"fe80::1%eth0" is not an IP address`},
		{in: "10.0.0.1-9", wantErr: `"10.0.0.1-9": the range end must be a full address, e.g. 10.0.0.9`},
		{in: "10.0.0.1-", wantErr: `"10.0.0.1-": range end "" is not an IP address`},
		{in: "-10.0.0.1", wantErr: `"-10.0.0.1": range start "" is not an IP address`},
		{in: "a-b", wantErr: `"a-b": range start "a" is not an IP address`},
		{in: "10.0.0.1-10.0.0.2-10.0.0.3", wantErr: `"10.0.0.1-10.0.0.2-10.0.0.3" is not an IP range: want FIRST-LAST, e.g. 10.0.0.1-10.0.0.9`},
		{in: "10.0.0.9-10.0.0.1", wantErr: `"10.0.0.9-10.0.0.1": the range runs backwards`},
		{in: "fd00::1-fd00::9", wantErr: `"fd00::1-fd00::9": IP ranges must be IPv4; list IPv6 addresses one by one`},
		{in: "10.0.0.1-fd00::9", wantErr: `"10.0.0.1-fd00::9": IP ranges must be IPv4; list IPv6 addresses one by one`},
		{in: "10.0.0.0-10.0.255.255", want: nil}, // 65536 addresses: checked by length below
		{in: "10.0.0.0-10.1.0.0", wantErr: `"10.0.0.0-10.1.0.0": the range has 65537 addresses; at most 65536`},
		{in: "0.0.0.0-255.255.255.255", wantErr: `"0.0.0.0-255.255.255.255": the range has 4294967296 addresses; at most 65536`},
		{in: "10.0.0.0-10.0.255.255,10.1.0.0", wantErr: `more than 65536 hosts`},
		{in: "10.1.0.0,10.0.0.0-10.0.255.255", wantErr: `more than 65536 hosts`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHostList(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalid) {
					t.Errorf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.in == "10.0.0.0-10.0.255.255" {
				if len(got) != MaxRange || got[0] != "10.0.0.0" || got[MaxRange-1] != "10.0.255.255" {
					t.Errorf("got %d addresses, %s..%s", len(got), got[0], got[len(got)-1])
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTaint(t *testing.T) {
	tests := []struct {
		in   string
		want Taint
		bad  bool
	}{
		{in: "dedicated=infra:NoSchedule", want: Taint{Key: "dedicated", Value: "infra", Effect: "NoSchedule"}},
		{in: "node-role.kubernetes.io/master:NoSchedule", want: Taint{Key: "node-role.kubernetes.io/master", Effect: "NoSchedule"}},
		{in: "k=:PreferNoSchedule", want: Taint{Key: "k", Effect: "PreferNoSchedule"}},
		{in: " k:NoExecute- ", want: Taint{Key: "k", Effect: "NoExecute", Remove: true}},
		{in: "k=v:NoExecute-", want: Taint{Key: "k", Value: "v", Effect: "NoExecute", Remove: true}},
		{in: "k-", want: Taint{Key: "k", Remove: true}},
		{in: "k", bad: true},
		{in: "k=v", bad: true},
		{in: "k=v-", bad: true},
		{in: "k=v:Never", bad: true},
		{in: ":NoSchedule", bad: true},
		{in: "k=v v:NoSchedule", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseTaint(tt.in)
		if tt.bad {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("%q: got %+v, %v; want an error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckLabel(t *testing.T) {
	tests := []struct {
		key, value string
		ok         bool
	}{
		{"ssd", "true", true},
		{"topology.kubernetes.io/zone", "z-1", true},
		{"a", "", true},
		{"", "x", false},
		{"/a", "x", false},
		{"a b", "x", false},
		{"a", "-x", false},
		{"a", "x-", false},
		{"a", string(make([]byte, 64)), false},
	}
	for _, tt := range tests {
		if got := checkLabel(tt.key, tt.value) == ""; got != tt.ok {
			t.Errorf("checkLabel(%q, %q) ok = %v, want %v", tt.key, tt.value, got, tt.ok)
		}
	}
}
