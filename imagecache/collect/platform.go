package collect

import (
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// platformSet matches platforms against the targets the way containerd
// does (normalised: aarch64 is arm64, arm64/v8 is arm64, ...), so that
// what is collected is what containerd picks on the node.
type platformSet struct {
	targets  []v1.Platform
	matchers []platforms.Matcher
}

func newPlatformSet(targets []v1.Platform) platformSet {
	s := platformSet{targets: targets}
	for _, t := range targets {
		s.matchers = append(s.matchers, platforms.NewMatcher(toSpec(t)))
	}
	return s
}

// matches reports whether p is one of the targets.
func (s platformSet) matches(p v1.Platform) bool {
	for _, m := range s.matchers {
		if m.Match(toSpec(p)) {
			return true
		}
	}
	return false
}

// String lists the targets, "linux/amd64, linux/arm64".
func (s platformSet) String() string { return platformList(s.targets) }

// pickChildren chooses, for every target, the first image manifest of an
// index whose platform matches it. It returns the chosen entries (each
// once, in index order) and the targets that have none.
func (s platformSet) pickChildren(manifests []v1.Descriptor) (chosen []v1.Descriptor, missing []v1.Platform) {
	taken := make(map[int]bool)
	for ti, m := range s.matchers {
		found := false
		for i, d := range manifests {
			if d.Platform == nil || !d.MediaType.IsImage() || !m.Match(toSpec(*d.Platform)) {
				continue
			}
			taken[i], found = true, true
			break
		}
		if !found {
			missing = append(missing, s.targets[ti])
		}
	}
	for i, d := range manifests {
		if taken[i] {
			chosen = append(chosen, d)
		}
	}
	return chosen, missing
}

// offered lists the platforms of an index's image manifests.
func offered(manifests []v1.Descriptor) string {
	var ps []v1.Platform
	for _, d := range manifests {
		if d.Platform != nil && d.MediaType.IsImage() {
			ps = append(ps, *d.Platform)
		}
	}
	if len(ps) == 0 {
		return "no platform"
	}
	return platformList(ps)
}

// platformList formats platforms as "os/arch[/variant]", comma-separated.
func platformList(ps []v1.Platform) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, platforms.Format(toSpec(p)))
	}
	return strings.Join(parts, ", ")
}

// configPlatform is the platform an image's config declares.
func configPlatform(cf *v1.ConfigFile) v1.Platform {
	return v1.Platform{
		OS:           cf.OS,
		Architecture: cf.Architecture,
		Variant:      cf.Variant,
		OSVersion:    cf.OSVersion,
		OSFeatures:   cf.OSFeatures,
	}
}

func toSpec(p v1.Platform) specs.Platform {
	return specs.Platform{
		OS:           p.OS,
		Architecture: p.Architecture,
		Variant:      p.Variant,
		OSVersion:    p.OSVersion,
		OSFeatures:   p.OSFeatures,
	}
}
