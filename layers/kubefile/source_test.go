package kubefile

import "testing"

func TestResolveArch(t *testing.T) {
	tests := []struct{ src, want string }{
		{"${ARCH}/bin", "arm64/bin"},
		{"$ARCH/bin", "arm64/bin"},
		{"bin/$ARCH", "bin/arm64"},
		{"a-${ARCH}-$ARCH.tar", "a-arm64-arm64.tar"},
		{"$ARCHIVE/x", "$ARCHIVE/x"},
		{"$ARCH_X", "$ARCH_X"},
		{"${ARCHX}", "${ARCHX}"},
		{"plain/path", "plain/path"},
		{"$", "$"},
		{"local://${ARCH}/app.yaml", "local://arm64/app.yaml"},
	}
	for _, tt := range tests {
		if got := ResolveArch(tt.src, "arm64"); got != tt.want {
			t.Errorf("ResolveArch(%q) = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestSources(t *testing.T) {
	tests := []struct {
		src    string
		local  string
		isLoc  bool
		remote bool
	}{
		{"local://app.yaml", "app.yaml", true, false},
		{"local://dir/sub", "dir/sub", true, false},
		{"https://example.com/a.yaml", "", false, true},
		{"http://example.com/a.yaml", "", false, true},
		{"ftp://example.com/a.yaml", "", false, false},
		{"app.yaml", "", false, false},
	}
	for _, tt := range tests {
		p, ok := LocalPath(tt.src)
		if p != tt.local || ok != tt.isLoc || IsRemote(tt.src) != tt.remote {
			t.Errorf("%q: LocalPath = %q, %v; IsRemote = %v", tt.src, p, ok, IsRemote(tt.src))
		}
	}
}
