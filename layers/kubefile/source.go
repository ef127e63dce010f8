package kubefile

import (
	"fmt"
	"strings"
)

// Source schemes of APP, CNI and CSI.
const (
	SchemeLocal = "local://"
	SchemeHTTP  = "http://"
	SchemeHTTPS = "https://"
)

// LocalPath returns the build-context path of a local:// source and true,
// or "" and false for any other source.
func LocalPath(src string) (string, bool) {
	if !strings.HasPrefix(src, SchemeLocal) {
		return "", false
	}
	return strings.TrimPrefix(src, SchemeLocal), true
}

// IsRemote reports whether src is an http:// or https:// URL.
func IsRemote(src string) bool {
	return strings.HasPrefix(src, SchemeHTTP) || strings.HasPrefix(src, SchemeHTTPS)
}

// checkSource checks the scheme of an APP, CNI or CSI source.
func checkSource(src string) error {
	if p, ok := LocalPath(src); ok {
		if p == "" {
			return fmt.Errorf("source %q has an empty path", src)
		}
		return nil
	}
	if IsRemote(src) {
		if src == SchemeHTTP || src == SchemeHTTPS {
			return fmt.Errorf("source %q has no host", src)
		}
		return nil
	}
	return fmt.Errorf("source %q must start with local://, http:// or https://", src)
}

// ResolveArch replaces ${ARCH} and $ARCH in a COPY, ADD, APP, CNI or CSI
// source with arch, e.g. "${ARCH}/bin" becomes "arm64/bin". Step leaves
// these references in sources so that one expansion serves every platform.
func ResolveArch(src, arch string) string {
	if !strings.Contains(src, "$") {
		return src
	}
	var b strings.Builder
	for i := 0; i < len(src); {
		rest := src[i:]
		switch {
		case strings.HasPrefix(rest, "${"+archVar+"}"):
			b.WriteString(arch)
			i += len(archVar) + 3
		case strings.HasPrefix(rest, "$"+archVar) && !continuesName(rest, len(archVar)+1):
			b.WriteString(arch)
			i += len(archVar) + 1
		default:
			b.WriteByte(src[i])
			i++
		}
	}
	return b.String()
}

// continuesName reports whether s[i] would continue a variable name.
func continuesName(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
