package discover

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Found is one image field of a YAML manifest.
type Found struct {
	Ref  string // the field's value as written; not checked to be a reference
	Line int    // 1-based line of the "image" key
}

// ManifestImages returns the value of every key named "image" whose value
// is a non-empty string, at any depth of every YAML document in data
// (multi-document files, List kinds, CRDs: nothing is assumed about the
// shape). Values that are mappings ("image: {repository: x}"), numbers or
// null are passed over. Aliases are followed, each anchored node once, so
// an image under a merge key ("<<: *defaults") counts at the anchor's line.
//
// The values are returned as written, in document order: templated values
// ("{{ .Values.image }}") are for the caller to reject. YAML that does not
// parse is an *Error wrapping ErrSyntax naming file and line.
func ManifestImages(data []byte, file string) ([]Found, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	w := &imageWalker{seen: map[*yaml.Node]bool{}}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return w.found, nil
		}
		if err != nil {
			return nil, syntaxError(file, data, err)
		}
		w.walk(&doc)
	}
}

// imageWalker collects image fields from YAML nodes.
type imageWalker struct {
	found []Found
	seen  map[*yaml.Node]bool // collections and aliases walked, so alias cycles and fan-out cost nothing
}

// walk visits n and everything below it once.
func (w *imageWalker) walk(n *yaml.Node) {
	if n == nil || n.Kind == yaml.ScalarNode || w.seen[n] {
		return
	}
	w.seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			w.walk(c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "image" {
				if s, ok := stringValue(v); ok {
					w.found = append(w.found, Found{Ref: s, Line: k.Line})
					continue
				}
			}
			w.walk(v)
		}
	case yaml.AliasNode:
		w.walk(n.Alias)
	}
}

// stringValue returns the text of n (following one alias) if it is a
// string scalar with something other than spaces in it.
func stringValue(n *yaml.Node) (string, bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || strings.TrimSpace(n.Value) == "" {
		return "", false
	}
	return n.Value, true
}
