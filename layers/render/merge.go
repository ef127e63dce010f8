package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// ErrMultipleDocuments is returned by MergeYAML when its overlay holds more
// than one YAML document.
var ErrMultipleDocuments = errors.New("overlay holds more than one YAML document")

// ErrBadOverlay: a MergeDocuments overlay document would change which
// documents it merges into (see checkOverlayIdentity).
var ErrBadOverlay = errors.New("bad overlay document")

// ErrNotMapping: a MergeDocuments overlay document is a list or a scalar,
// not a mapping of keys to change.
var ErrNotMapping = errors.New("an overlay document must be a mapping")

// ErrTooLarge is returned when aliases in a YAML input expand past the limit
// (aliasAllowance): a "billion laughs" document is refused, not expanded.
var ErrTooLarge = errors.New("YAML aliases expand past the size limit")

// aliasAllowance bounds expansion: an input of n bytes may hold at most
// n + aliasAllowance nodes once its aliases are expanded (without aliases
// it holds fewer nodes than bytes).
const aliasAllowance = 1 << 16

// MergeDocuments deep-merges the YAML documents of each overlay, in order,
// into the documents of base and returns the result as YAML.
//
// An overlay document with apiVersion or kind is merged into every base
// document that has the same value for each of apiVersion, kind,
// metadata.name and metadata.namespace the overlay document sets: a kubeadm
// ClusterConfiguration goes into the base's ClusterConfiguration, a
// document naming a ConfigMap into that ConfigMap. An overlay document with
// neither apiVersion nor kind is a plain patch merged into every base
// document (as sealer's Config merge does with each document section). An
// overlay document that matches nothing is appended, so a later overlay
// document can merge into it.
//
// Merging: mappings merge key by key, recursively; a sequence, a scalar or
// null in the overlay replaces the base value. Base key order and comments
// are kept; new keys follow in overlay order. Aliases are expanded (anchors
// dropped), so the result is standalone. The output is deterministic: the
// same inputs give the same bytes. Empty documents are dropped; no
// documents at all give empty output.
func MergeDocuments(base []byte, overlays ...[]byte) ([]byte, error) {
	docs, err := ParseDocuments(base)
	if err != nil {
		return nil, fmt.Errorf("parse base YAML: %w", err)
	}
	for i, o := range overlays {
		odocs, err := ParseDocuments(o)
		if err != nil {
			return nil, fmt.Errorf("parse overlay %d YAML: %w", i+1, err)
		}
		for j, od := range odocs {
			// A list or a scalar says no keys to change: merged into
			// every base document it would replace them all, and one
			// appended before it would be replaced too (merging the
			// same overlay twice then differs from once).
			if od.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("overlay %d, document %d (line %d): not a mapping: %w", i+1, j+1, od.Line, ErrNotMapping)
			}
			if err := checkOverlayIdentity(od); err != nil {
				return nil, fmt.Errorf("overlay %d, document %d: %w", i+1, j+1, err)
			}
		}
		// Documents that name an apiVersion or kind first (merged into
		// their matches, or appended), then those that name neither
		// (merged into every document, the appended ones too): in this
		// order merging the same overlay again changes nothing.
		for _, generic := range []bool{false, true} {
			for _, od := range odocs {
				if id := identify(od); (id.apiVersion == "" && id.kind == "") == generic {
					docs = mergeDocument(docs, od)
				}
			}
		}
	}
	return EncodeDocuments(docs)
}

// checkOverlayIdentity refuses an overlay document with an apiVersion or
// kind that is empty or not a string: it would match no document, yet
// merged into one it would change which documents later merges match.
func checkOverlayIdentity(od *yaml.Node) error {
	for _, key := range []string{"apiVersion", "kind"} {
		if v := valueAt(od, key); v != nil && (v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "") {
			return fmt.Errorf("line %d: %s must be a non-empty string: %w", v.Line, key, ErrBadOverlay)
		}
	}
	return nil
}

// MergeYAML deep-merges one overlay document into every document of base,
// whatever their kind: sealer's "merge" strategy for a Config, which merges
// the data into each YAML document section of the file. An overlay of more
// than one document is refused with ErrMultipleDocuments; an empty overlay
// leaves base as it is (re-encoded). An empty base gives the overlay.
// Merge rules are those of MergeDocuments.
func MergeYAML(base, overlay []byte) ([]byte, error) {
	docs, err := ParseDocuments(base)
	if err != nil {
		return nil, fmt.Errorf("parse base YAML: %w", err)
	}
	odocs, err := ParseDocuments(overlay)
	if err != nil {
		return nil, fmt.Errorf("parse overlay YAML: %w", err)
	}
	switch {
	case len(odocs) > 1:
		return nil, fmt.Errorf("merge YAML: %w (%d documents)", ErrMultipleDocuments, len(odocs))
	case len(odocs) == 1 && len(docs) == 0:
		docs = odocs
	case len(odocs) == 1:
		for i := range docs {
			docs[i] = mergeNode(docs[i], copyNode(odocs[0]))
		}
	}
	return EncodeDocuments(docs)
}

// ParseDocuments decodes every non-empty document of data. Each returned
// node is a document's content (not the DocumentNode), with aliases
// expanded (within a budget: an alias bomb is refused with ErrTooLarge)
// and anchors dropped.
func ParseDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	budget := len(data) + aliasAllowance
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		content, err := expand(doc.Content[0], &budget, 0)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if content.HeadComment == "" {
			content.HeadComment = doc.HeadComment
		}
		if content.FootComment == "" {
			content.FootComment = doc.FootComment
		}
		docs = append(docs, content)
	}
}

// EncodeDocuments writes docs as a multi-document YAML stream with
// two-space indentation (empty for no documents).
func EncodeDocuments(docs []*yaml.Node) ([]byte, error) {
	if len(docs) == 0 {
		return []byte{}, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for i, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encode YAML document %d: %w", i+1, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// mergeDocument merges one overlay document into the matching documents of
// docs, or appends it when none matches.
func mergeDocument(docs []*yaml.Node, overlay *yaml.Node) []*yaml.Node {
	id := identify(overlay)
	matched := false
	for i, d := range docs {
		if id.matches(identify(d)) {
			docs[i] = mergeNode(d, copyNode(overlay))
			matched = true
		}
	}
	if !matched {
		docs = append(docs, copyNode(overlay))
	}
	return docs
}

// identity is what picks the base documents an overlay document merges
// into.
type identity struct {
	apiVersion, kind, name, namespace string
}

func identify(n *yaml.Node) identity {
	var id identity
	if n.Kind != yaml.MappingNode {
		return id
	}
	id.apiVersion = scalarAt(n, "apiVersion")
	id.kind = scalarAt(n, "kind")
	if meta := valueAt(n, "metadata"); meta != nil && meta.Kind == yaml.MappingNode {
		id.name = scalarAt(meta, "name")
		id.namespace = scalarAt(meta, "namespace")
	}
	return id
}

// matches reports whether the overlay identity o selects base document b:
// o without apiVersion and kind is a plain patch for every document;
// otherwise every field o sets must be equal in b.
func (o identity) matches(b identity) bool {
	if o.apiVersion == "" && o.kind == "" {
		return true
	}
	eq := func(o, b string) bool { return o == "" || o == b }
	return eq(o.apiVersion, b.apiVersion) && eq(o.kind, b.kind) && eq(o.name, b.name) && eq(o.namespace, b.namespace)
}

// mergeNode merges overlay into base and returns the result: mappings merge
// key by key, anything else in the overlay replaces base. Comments of base
// survive where the overlay has none.
func mergeNode(base, overlay *yaml.Node) *yaml.Node {
	if base.Kind != yaml.MappingNode || overlay.Kind != yaml.MappingNode {
		if overlay.HeadComment == "" {
			overlay.HeadComment = base.HeadComment
		}
		if overlay.LineComment == "" {
			overlay.LineComment = base.LineComment
		}
		if overlay.FootComment == "" {
			overlay.FootComment = base.FootComment
		}
		return overlay
	}
	index := make(map[string]int, len(base.Content)/2)
	for i := 0; i+1 < len(base.Content); i += 2 {
		if k := base.Content[i]; k.Kind == yaml.ScalarNode {
			if _, dup := index[k.Value]; !dup {
				index[k.Value] = i
			}
		}
	}
	for i := 0; i+1 < len(overlay.Content); i += 2 {
		k, v := overlay.Content[i], overlay.Content[i+1]
		j, ok := index[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			if k.Kind == yaml.ScalarNode {
				index[k.Value] = len(base.Content)
			}
			base.Content = append(base.Content, k, v)
			continue
		}
		base.Content[j+1] = mergeNode(base.Content[j+1], v)
	}
	return base
}

// keyIndex is the index in m.Content of the first key equal to k, or -1.
// Only scalar keys compare equal.
func keyIndex(m, k *yaml.Node) int {
	if k.Kind != yaml.ScalarNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == k.Value {
			return i
		}
	}
	return -1
}

// valueAt is the value of scalar key in mapping m, or nil.
func valueAt(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalarAt is the scalar value of key in mapping m, or "".
func scalarAt(m *yaml.Node, key string) string {
	if v := valueAt(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && (n.Value == "" || n.Value == "~" || n.Value == "null")
}

// expand returns a deep copy of n with every alias replaced by a copy of
// what it points to and anchors dropped. budget bounds the nodes created.
func expand(n *yaml.Node, budget *int, depth int) (*yaml.Node, error) {
	*budget--
	if *budget < 0 {
		return nil, ErrTooLarge
	}
	if depth > 10000 {
		return nil, fmt.Errorf("YAML nested too deep: %w", ErrTooLarge)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias %q", n.Line, n.Value)
		}
		c, err := expand(n.Alias, budget, depth+1)
		if err != nil {
			return nil, err
		}
		c.LineComment = n.LineComment
		return c, nil
	}
	if n.Kind == yaml.MappingNode {
		if err := checkKeys(n); err != nil {
			return nil, err
		}
	}
	c := *n
	c.Anchor = ""
	c.Alias = nil
	c.Content = nil
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			e, err := expand(k, budget, depth+1)
			if err != nil {
				return nil, err
			}
			c.Content[i] = e
		}
	}
	return &c, nil
}

// checkKeys refuses a mapping that repeats a scalar key: YAML forbids it,
// and which of the two a merge should change is anyone's guess. It also
// refuses a key that is itself a list or a map (YAML's complex keys): no
// config file uses them, and a merge cannot tell whether two are the same
// key (merging one twice added it twice).
func checkKeys(m *yaml.Node) error {
	seen := make(map[string]int, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: a mapping key that is a list or a map is not supported", k.Line)
		}
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
	}
	return nil
}

// copyNode deep-copies a tree that holds no aliases (as ParseDocuments
// returns them).
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = copyNode(k)
		}
	}
	return &c
}
