package discover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/drove-project/drove/layers/reference"
)

// AuthSection is one section of an --image-list-with-auth file: images of
// one private registry and the credentials to pull them.
type AuthSection struct {
	Registry string   // host[:port]; Docker Hub's aliases spelled docker.io
	Username string   // empty with Password for a registry that needs none
	Password string   // as written, never logged
	Images   []string // normalized, each in Registry
}

// ParseAuthList reads an --image-list-with-auth file, sealer's YAML list of
// sections:
//
//	# auth.yaml
//	- registry: registry.example.com:5000
//	  username: builder
//	  password: secret
//	  images:
//	    - team/web:1.2       # registry.example.com:5000/team/web:1.2
//	    - registry.example.com:5000/team/api:3
//
// An image written without a registry host gets the section's registry in
// front; one written with a host must name the section's registry. username
// and password come together or not at all; two sections for one registry
// must agree on them. Errors are *Error values naming file, line and field
// ("[0].images[1]") and wrap ErrSyntax, ErrInvalid or ErrReference; all
// are reported (up to 20), and no sections are returned then.
func ParseAuthList(data []byte, file string) ([]AuthSection, error) {
	parsed, err := parseAuthList(data, file)
	if err != nil {
		return nil, err
	}
	var secs []AuthSection
	for _, p := range parsed {
		secs = append(secs, p.AuthSection)
	}
	return secs, nil
}

// parsedSection is a section with where its parts were written.
type parsedSection struct {
	AuthSection
	Line       int   // of the registry field
	ImageLines []int // ImageLines[i] is the line of Images[i]
}

// authKeys are the fields of a section.
var authKeys = map[string]bool{"registry": true, "username": true, "password": true, "images": true}

// parseAuthList is ParseAuthList that also returns where each section and
// image was written.
func parseAuthList(data []byte, file string) (secs []parsedSection, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(file, data, err)
		}
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, &Error{File: file, Line: line, Msg: "a second YAML document: put every section in one list", Err: ErrInvalid}
	}
	p := &authParser{file: file, seen: map[string]sectionAt{}}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := resolve(doc.Content[0])
	switch {
	case isNull(root):
		return nil, nil
	case root.Kind != yaml.SequenceNode:
		p.errorf(ErrInvalid, root.Line, "", "want a list of sections {registry, username, password, images}, got %s", kindName(root))
	default:
		for i, item := range root.Content {
			if p.errs.full() {
				break
			}
			if sec, ok := p.section(resolve(item), fmt.Sprintf("[%d]", i)); ok {
				secs = append(secs, sec)
			}
		}
	}
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return secs, nil
}

// sectionAt is what an earlier section said about a registry.
type sectionAt struct {
	line               int
	username, password string
}

// authParser holds the state of one parseAuthList call.
type authParser struct {
	file string
	errs errList
	seen map[string]sectionAt // by registry
}

func (p *authParser) errorf(sentinel error, line int, field, format string, args ...any) {
	p.errs.add(&Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

// section reads one section; ok is false when it had errors (recorded).
func (p *authParser) section(n *yaml.Node, field string) (sec parsedSection, ok bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(ErrInvalid, n.Line, field, "want a mapping {registry, username, password, images}, got %s", kindName(n))
		return sec, false
	}
	before := len(p.errs.errs) + p.errs.dropped
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		key := k.Value
		switch {
		case k.Kind != yaml.ScalarNode || !authKeys[key]:
			p.errorf(ErrInvalid, k.Line, field, "unknown field %q: want registry, username, password or images", key)
		case vals[key] != nil:
			p.errorf(ErrInvalid, k.Line, field+"."+key, "duplicate field (first at line %d)", vals[key].Line)
		default:
			vals[key] = v
		}
	}
	if v := vals["registry"]; v == nil || isNull(v) {
		p.errorf(ErrInvalid, n.Line, field+".registry", "missing: give the registry host the credentials are for")
	} else if s, good := p.scalar(v, field+".registry"); good {
		sec.Line = v.Line
		sec.Registry = p.registry(s, v.Line, field+".registry")
	}
	sec.Username, _ = p.optScalar(vals["username"], field+".username")
	sec.Password, _ = p.optScalar(vals["password"], field+".password")
	if (sec.Username == "") != (sec.Password == "") {
		missing, other := "password", "username"
		if sec.Username == "" {
			missing, other = "username", "password"
		}
		p.errorf(ErrInvalid, n.Line, field+"."+missing, "missing: %s is set, give both or neither", other)
	}
	if sec.Registry != "" {
		if prev, dup := p.seen[sec.Registry]; dup && (prev.username != sec.Username || prev.password != sec.Password) {
			p.errorf(ErrInvalid, sec.Line, field+".registry", "registry %s already has other credentials in the section at line %d", sec.Registry, prev.line)
		} else if !dup {
			p.seen[sec.Registry] = sectionAt{line: sec.Line, username: sec.Username, password: sec.Password}
		}
	}
	if v := vals["images"]; v != nil && !isNull(v) {
		if v.Kind != yaml.SequenceNode {
			p.errorf(ErrInvalid, v.Line, field+".images", "want a list of image references, got %s", kindName(v))
		} else {
			for j, item := range v.Content {
				item = resolve(item)
				f := fmt.Sprintf("%s.images[%d]", field, j)
				s, good := p.scalar(item, f)
				if !good || sec.Registry == "" {
					continue
				}
				if ref, good := p.image(s, sec.Registry, item.Line, f); good {
					sec.Images = append(sec.Images, ref)
					sec.ImageLines = append(sec.ImageLines, item.Line)
				}
			}
		}
	}
	return sec, len(p.errs.errs)+p.errs.dropped == before
}

// registry checks a section's registry and returns it as users see it.
func (p *authParser) registry(s string, line int, field string) string {
	if strings.ContainsAny(s, "/ ") {
		p.errorf(ErrInvalid, line, field, "%q: want a registry host[:port], without scheme or path", s)
		return ""
	}
	reg, err := name.NewRegistry(s)
	if err != nil {
		p.errorf(ErrInvalid, line, field, "%q: %v", s, err)
		return ""
	}
	return reference.DisplayRegistry(reg.RegistryStr())
}

// image normalizes one image of a section whose registry is reg.
func (p *authParser) image(s, reg string, line int, field string) (string, bool) {
	full := s
	if i := strings.IndexByte(s, '/'); i < 0 || !looksLikeHost(s[:i]) {
		full = reg + "/" + s
	}
	ref, err := reference.Parse(full)
	if err != nil {
		p.errorf(ErrReference, line, field, "%v", err)
		return "", false
	}
	if got := reference.DisplayRegistry(ref.Context().RegistryStr()); got != reg {
		p.errorf(ErrInvalid, line, field, "image %q is in registry %s, not in this section's %s", s, got, reg)
		return "", false
	}
	return reference.String(ref), true
}

// looksLikeHost reports whether the first component of a reference names a
// registry, as docker decides it: it has a dot or a colon, or is localhost.
func looksLikeHost(c string) bool {
	return strings.ContainsAny(c, ".:") || c == "localhost"
}

// scalar returns the text of a non-empty scalar, recording an error for
// anything else.
func (p *authParser) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		p.errorf(ErrInvalid, n.Line, field, "want a non-empty string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// optScalar is scalar for a field that may be absent or null ("").
// Numbers and booleans keep their text as written ("0123").
func (p *authParser) optScalar(n *yaml.Node, field string) (string, bool) {
	if n == nil || isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(ErrInvalid, n.Line, field, "want a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// resolve follows an alias to its anchor.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is YAML null ("", "~", "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names what n is, for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		if n.Value == "" {
			return "an empty string"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
	}
	return "an alias"
}
