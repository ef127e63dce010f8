package render

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    Env
		wantErr string
	}{
		{name: "plain", in: []string{"PodCIDR=100.64.0.0/10", "key=value"}, want: Env{"PodCIDR": {"100.64.0.0/10"}, "key": {"value"}}},
		{name: "value keeps later =", in: []string{"Args=--a=b --c=d"}, want: Env{"Args": {"--a=b --c=d"}}},
		{name: "repeated key makes a list", in: []string{"CertSANs=a", "CertSANs=b"}, want: Env{"CertSANs": {"a", "b"}}},
		{name: "semicolons make a list (sealer)", in: []string{"IP=127.0.0.1;192.168.0.2", "IP=10.0.0.1"}, want: Env{"IP": {"127.0.0.1", "192.168.0.2", "10.0.0.1"}}},
		{name: "empty value", in: []string{"Empty="}, want: Env{"Empty": {""}}},
		{name: "nothing", in: nil, want: Env{}},
		{name: "no equals", in: []string{"a=1", "oops"}, wantErr: `env entry 2 "oops"`},
		{name: "empty key", in: []string{"=v"}, wantErr: `env entry 1 "=v"`},
		{name: "space in key", in: []string{"a b=v"}, wantErr: `env entry 1 "a b=v"`},
		{name: "NUL in value", in: []string{"a=v\x00"}, wantErr: `env entry 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnv(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadEnv) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want ErrBadEnv naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			back, err := ParseEnv(got.Entries())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("Entries %q parse back to %v (%v)", got.Entries(), back, err)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	image := Env{"SvcCIDR": {"10.96.0.0/22"}, "CertSANs": {"img"}, "OnlyImage": {"i"}}
	cluster := Env{"SvcCIDR": {"10.100.0.0/16"}, "CertSANs": {"a", "b"}}
	host := Env{"CertSANs": {"h"}, "HostOnly": {"x"}}
	cli := Env{"SvcCIDR": {"10.200.0.0/16"}}
	tests := []struct {
		name   string
		layers []Env
		want   Env
	}{
		{name: "none", want: Env{}},
		{name: "one", layers: []Env{image}, want: image},
		{name: "cluster over image, list replaces whole", layers: []Env{image, cluster}, want: Env{"SvcCIDR": {"10.100.0.0/16"}, "CertSANs": {"a", "b"}, "OnlyImage": {"i"}}},
		{name: "CLI > host > cluster > image", layers: []Env{image, cluster, host, cli}, want: Env{"SvcCIDR": {"10.200.0.0/16"}, "CertSANs": {"h"}, "OnlyImage": {"i"}, "HostOnly": {"x"}}},
		{name: "nil layers skipped", layers: []Env{nil, host, nil}, want: host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.layers...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// The layers are not changed through the result.
	got := Merge(cluster)
	got["CertSANs"][0] = "changed"
	if cluster["CertSANs"][0] != "a" {
		t.Error("Merge shares value slices with its layers")
	}
}

func TestEnvViews(t *testing.T) {
	env := Env{"CertSANs": {"a", "b"}, "Key": {"v"}}
	if got, want := env.Shell(), map[string]string{"CertSANs": "a b", "Key": "v"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Shell() = %v, want %v", got, want)
	}
	if got, want := env.TemplateData(), map[string]any{"CertSANs": []string{"a", "b"}, "Key": "v"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TemplateData() = %v, want %v", got, want)
	}
	if got := env.Get("CertSANs"); got != "a b" {
		t.Errorf("Get(CertSANs) = %q", got)
	}
	if got := env.Get("Missing"); got != "" {
		t.Errorf("Get(Missing) = %q", got)
	}
	if got, want := env.Entries(), []string{"CertSANs=a;b", "Key=v"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Entries() = %v, want %v", got, want)
	}
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name    string
		in      Env
		want    Env // keys checked
		wantErr string
	}{
		{
			name: "defaults",
			in:   Env{},
			want: Env{"PodCIDR": {"100.64.0.0/10"}, "SvcCIDR": {"10.96.0.0/22"}, "KubeSvcIP": {"10.96.0.1"}, "DNSSvcIP": {"10.96.0.10"}, "IPvsVIPv4": {"10.103.97.2"}, "IPvsVIPv6": nil},
		},
		{
			name: "user SvcCIDR, stale derived values replaced, VIP kept",
			in:   Env{"SvcCIDR": {"10.100.0.0/16"}, "DNSSvcIP": {"10.96.0.10"}, "KubeSvcIP": {"1.1.1.1"}, "IPvsVIPv4": {"10.0.0.2"}, "PodCIDR": {"10.244.0.0/16"}},
			want: Env{"PodCIDR": {"10.244.0.0/16"}, "SvcCIDR": {"10.100.0.0/16"}, "KubeSvcIP": {"10.100.0.1"}, "DNSSvcIP": {"10.100.0.10"}, "IPvsVIPv4": {"10.0.0.2"}},
		},
		{
			name: "host bits in the CIDR are masked",
			in:   Env{"SvcCIDR": {"10.96.3.7/22"}},
			want: Env{"KubeSvcIP": {"10.96.0.1"}, "DNSSvcIP": {"10.96.0.10"}},
		},
		{
			name: "dual stack takes the first family (v6)",
			in:   Env{"SvcCIDR": {"fd00:10:96::/112,10.96.0.0/22"}, "HostIPFamily": {"IPv6"}},
			want: Env{"KubeSvcIP": {"fd00:10:96::1"}, "DNSSvcIP": {"fd00:10:96::a"}, "IPvsVIPv6": {DefaultIPvsVIPv6}},
		},
		{
			name: "dual stack v4 first",
			in:   Env{"SvcCIDR": {"10.96.0.0/22, fd00:10:96::/112"}},
			want: Env{"KubeSvcIP": {"10.96.0.1"}, "DNSSvcIP": {"10.96.0.10"}},
		},
		{name: "bad SvcCIDR", in: Env{"SvcCIDR": {"10.96.0.0"}}, wantErr: `SvcCIDR="10.96.0.0"`},
		{name: "SvcCIDR too small", in: Env{"SvcCIDR": {"10.96.0.0/29"}}, wantErr: "no address number 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := Merge(tt.in)
			got, err := Derive(tt.in)
			if !reflect.DeepEqual(tt.in, before) {
				t.Errorf("Derive changed its input: %v, was %v", tt.in, before)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			for k, v := range tt.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
