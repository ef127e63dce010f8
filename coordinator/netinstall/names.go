package netinstall

import (
	"errors"
	"fmt"
	"strings"
)

// BinaryPrefix starts every download name: drove-<os>-<arch>.
const BinaryPrefix = "drove-"

// maxPlatformPart bounds an os or arch name (GOOS and GOARCH values are
// short; loong64, freebsd, ppc64le).
const maxPlatformPart = 16

// ErrBadBinaryName: a download name is not drove-<os>-<arch>.
var ErrBadBinaryName = errors.New("want drove-<os>-<arch>, e.g. drove-linux-amd64")

// BinaryName is the download name of the binary for goos/goarch.
func BinaryName(goos, goarch string) string { return BinaryPrefix + goos + "-" + goarch }

// ParseBinaryName splits a download name drove-<os>-<arch> into its GOOS
// and GOARCH: each 1 to 16 lower-case letters and digits, so a name can
// never climb out of the directory it is looked up in.
func ParseBinaryName(name string) (goos, goarch string, err error) {
	rest, ok := strings.CutPrefix(name, BinaryPrefix)
	if !ok {
		return "", "", fmt.Errorf("download %q: %w", name, ErrBadBinaryName)
	}
	goos, goarch, ok = strings.Cut(rest, "-")
	if !ok || !platformPart(goos) || !platformPart(goarch) {
		return "", "", fmt.Errorf("download %q: %w", name, ErrBadBinaryName)
	}
	return goos, goarch, nil
}

func platformPart(s string) bool {
	if s == "" || len(s) > maxPlatformPart {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// bearer returns the credential of an Authorization header of the Bearer
// scheme (RFC 6750: the scheme name in any case, then one or more spaces,
// then the credential), and whether there was one.
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" || strings.ContainsAny(cred, " \t\r\n") {
		return "", false
	}
	return cred, true
}
