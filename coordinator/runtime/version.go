package runtime

import (
	"fmt"
	"strconv"
	"strings"
)

// kubeVersion is a Kubernetes release: major.minor.patch plus whatever
// follows ("-rc.1", "+k3s1"), kept for display and commands.
type kubeVersion struct {
	major, minor, patch int
	suffix              string
}

// parseKubeVersion reads "v1.27.3", "1.27", "v1.28.0-rc.1" or
// "v1.27.3+k3s1".
func parseKubeVersion(s string) (kubeVersion, error) {
	var v kubeVersion
	rest := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(rest, "-+"); i >= 0 {
		rest, v.suffix = rest[:i], rest[i:]
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH", s)
	}
	nums := []*int{&v.major, &v.minor, &v.patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return v, fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH", s)
		}
		*nums[i] = n
	}
	if v.major == 0 && v.minor == 0 {
		return v, fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH", s)
	}
	return v, nil
}

// known reports whether v was set.
func (v kubeVersion) known() bool { return v.major != 0 || v.minor != 0 }

// String is the version as kubeadm takes it: "v1.27.3".
func (v kubeVersion) String() string {
	return fmt.Sprintf("v%d.%d.%d%s", v.major, v.minor, v.patch, v.suffix)
}

// less orders by major, minor and patch (the suffix is ignored).
func (v kubeVersion) less(o kubeVersion) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	if v.minor != o.minor {
		return v.minor < o.minor
	}
	return v.patch < o.patch
}

// kubeadmAPIVersion is the newest kubeadm config API a release reads:
// v1beta2 before 1.22, v1beta3 before 1.31, then v1beta4.
func kubeadmAPIVersion(v kubeVersion) string {
	switch {
	case v.less(kubeVersion{major: 1, minor: 22}):
		return "kubeadm.k8s.io/v1beta2"
	case v.less(kubeVersion{major: 1, minor: 31}):
		return "kubeadm.k8s.io/v1beta3"
	default:
		return "kubeadm.k8s.io/v1beta4"
	}
}

// checkUpgrade refuses what kubeadm would: going back, or skipping a
// minor release.
func checkUpgrade(from, to kubeVersion) error {
	if to.less(from) {
		return fmt.Errorf("%w: upgrade from %s to %s goes back: Kubernetes does not downgrade", ErrInvalid, from, to)
	}
	if to.major != from.major || to.minor > from.minor+1 {
		return fmt.Errorf("%w: upgrade from %s to %s skips a minor release: upgrade one minor release at a time", ErrInvalid, from, to)
	}
	return nil
}

// checkRollback refuses what kubeadm cannot go back to: a newer version
// (that is an upgrade), or one more than a minor release back.
func checkRollback(from, to kubeVersion) error {
	if from.less(to) {
		return fmt.Errorf("%w: rollback from %s to %s goes forward: that is an upgrade", ErrInvalid, from, to)
	}
	if to.major != from.major || to.minor+1 < from.minor {
		return fmt.Errorf("%w: rollback from %s to %s goes back more than one minor release: kubeadm cannot", ErrInvalid, from, to)
	}
	return nil
}
