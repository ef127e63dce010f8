package collect

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPickChildren(t *testing.T) {
	entry := func(hex string, mt types.MediaType, p *v1.Platform) v1.Descriptor {
		return v1.Descriptor{MediaType: mt, Digest: v1.Hash{Algorithm: "sha256", Hex: hex}, Platform: p}
	}
	armV8 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armV7 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	unknown := v1.Platform{OS: "unknown", Architecture: "unknown"}
	manifests := []v1.Descriptor{
		entry("att", types.OCIManifestSchema1, &unknown), // buildkit attestation
		entry("amd", types.OCIManifestSchema1, &amd64),
		entry("amd2", types.OCIManifestSchema1, &amd64), // a second amd64 entry is not taken
		entry("arm8", types.DockerManifestSchema2, &armV8),
		entry("arm7", types.OCIManifestSchema1, &armV7),
		entry("nop", types.OCIManifestSchema1, nil),
		entry("idx", types.OCIImageIndex, &riscv64), // nested index: not an image
	}
	tests := []struct {
		name        string
		targets     []v1.Platform
		wantChosen  []string
		wantMissing []v1.Platform
	}{
		{"amd64", []v1.Platform{amd64}, []string{"amd"}, nil},
		{"arm64 matches arm64/v8", []v1.Platform{arm64}, []string{"arm8"}, nil},
		{"aarch64 is arm64", []v1.Platform{{OS: "linux", Architecture: "aarch64"}}, []string{"arm8"}, nil},
		{"arm defaults to v7", []v1.Platform{{OS: "linux", Architecture: "arm"}}, []string{"arm7"}, nil},
		{"index order kept", []v1.Platform{arm64, amd64}, []string{"amd", "arm8"}, nil},
		{"same target twice", []v1.Platform{amd64, amd64}, []string{"amd"}, nil},
		{"nested index does not count", []v1.Platform{riscv64}, nil, []v1.Platform{riscv64}},
		{"one missing", []v1.Platform{amd64, {OS: "linux", Architecture: "s390x"}}, []string{"amd"}, []v1.Platform{{OS: "linux", Architecture: "s390x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chosen, missing := newPlatformSet(tt.targets).pickChildren(manifests)
			var got []string
			for _, d := range chosen {
				got = append(got, d.Digest.Hex)
			}
			if !slices.Equal(got, tt.wantChosen) {
				t.Errorf("chosen %v, want %v", got, tt.wantChosen)
			}
			if !slices.EqualFunc(missing, tt.wantMissing, func(a, b v1.Platform) bool { return a.Equals(b) }) {
				t.Errorf("missing %v, want %v", missing, tt.wantMissing)
			}
		})
	}
}

func TestPlatformSetMatchesConfig(t *testing.T) {
	s := newPlatformSet([]v1.Platform{amd64, arm64})
	for _, tt := range []struct {
		p    v1.Platform
		want bool
	}{
		{amd64, true},
		{v1.Platform{OS: "linux", Architecture: "x86_64"}, true},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, false},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, false},
	} {
		if got := s.matches(tt.p); got != tt.want {
			t.Errorf("matches(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := s.String(); got != "linux/amd64, linux/arm64" {
		t.Errorf("String() = %q", got)
	}
}
