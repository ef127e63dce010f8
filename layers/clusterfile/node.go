package clusterfile

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds how many YAML nodes one Parse visits, counting each use of
// an alias again: it keeps "billion laughs" documents cheap.
const maxNodes = 1 << 20

// maxMergeDepth bounds nested "<<" merge keys.
const maxMergeDepth = 16

// walker reads yaml.Nodes of one document, reporting problems to diags with
// file lines.
type walker struct {
	*diags
	off    int  // added to node lines: the document's first line - 1
	budget *int // node visits left for the whole file
}

func (w *walker) line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line + w.off
}

// resolve follows aliases and spends budget. It returns nil once the budget
// is gone (reported once).
func (w *walker) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxMergeDepth {
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	*w.budget--
	if *w.budget == 0 {
		w.errorf(ErrTooLarge, w.line(n), "", "document too complex: more than %d YAML nodes after expanding aliases", maxNodes)
	}
	if *w.budget <= 0 {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.DocumentNode:
		return "a document"
	case isNull(n):
		return "nothing"
	case n.Tag == "!!int" || n.Tag == "!!float":
		return "a number"
	case n.Tag == "!!bool":
		return "a boolean"
	}
	return "a string"
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// pair is one key and value of a mapping.
type pair struct {
	key   string
	knode *yaml.Node
	val   *yaml.Node
}

// mapping returns the pairs of a mapping node (after "<<" merges; explicit
// keys win). A null node is an empty mapping. ok is false after an error.
func (w *walker) mapping(n *yaml.Node, field string) ([]pair, bool) {
	n = w.resolve(n)
	if n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(ErrInvalid, w.line(n), field, "want a mapping, got %s", kindName(n))
		return nil, false
	}
	var pairs, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := w.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return nil, false
		}
		if k.Kind != yaml.ScalarNode {
			w.errorf(ErrInvalid, w.line(k), field, "a key must be a string, got %s", kindName(k))
			return nil, false
		}
		if k.Tag == "!!merge" {
			if !w.merge(v, field, &merged, 0) {
				return nil, false
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.errorf(ErrInvalid, w.line(k), join(field, k.Value), "duplicate key (first at line %d)", first)
			return nil, false
		}
		seen[k.Value] = w.line(k)
		pairs = append(pairs, pair{key: k.Value, knode: k, val: v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key]; !ok {
			seen[p.key] = w.line(p.knode)
			pairs = append(pairs, p)
		}
	}
	return pairs, true
}

// merge adds the pairs a "<<" value brings: a mapping or a list of them.
func (w *walker) merge(v *yaml.Node, field string, out *[]pair, depth int) bool {
	if depth > maxMergeDepth {
		w.errorf(ErrInvalid, w.line(v), field, "merge keys nested too deeply")
		return false
	}
	v = w.resolve(v)
	if v == nil {
		return false
	}
	var sources []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{v}
	case yaml.SequenceNode:
		sources = v.Content
	default:
		w.errorf(ErrInvalid, w.line(v), join(field, "<<"), "want a mapping or a list of mappings to merge, got %s", kindName(v))
		return false
	}
	for _, s := range sources {
		s = w.resolve(s)
		if s == nil {
			return false
		}
		if s.Kind != yaml.MappingNode {
			w.errorf(ErrInvalid, w.line(s), join(field, "<<"), "want a mapping to merge, got %s", kindName(s))
			return false
		}
		for i := 0; i+1 < len(s.Content); i += 2 {
			k := w.resolve(s.Content[i])
			if k == nil {
				return false
			}
			if k.Kind != yaml.ScalarNode {
				w.errorf(ErrInvalid, w.line(k), field, "a key must be a string, got %s", kindName(k))
				return false
			}
			if k.Tag == "!!merge" {
				if !w.merge(s.Content[i+1], field, out, depth+1) {
					return false
				}
				continue
			}
			*out = append(*out, pair{key: k.Value, knode: k, val: s.Content[i+1]})
		}
	}
	return true
}

// handler decodes one field's value; path names it in messages.
type handler func(v *yaml.Node, path string)

// fields calls the handler of each key of a mapping. Keys with a nil
// handler are known and ignored; unknown keys get a warning, as sealer
// ignores them too. It returns the pairs, and false after an error.
func (w *walker) fields(n *yaml.Node, field string, handlers map[string]handler) ([]pair, bool) {
	pairs, ok := w.mapping(n, field)
	if !ok {
		return nil, false
	}
	for _, p := range pairs {
		h, known := handlers[p.key]
		switch {
		case !known:
			w.warnf(w.line(p.knode), join(field, p.key), "unknown field, ignored")
		case h != nil:
			h(p.val, join(field, p.key))
		}
		if w.full() {
			return pairs, false
		}
	}
	return pairs, true
}

// str reads a scalar as a string; null is "". ok is false after an error.
func (w *walker) str(n *yaml.Node, field string) (string, bool) {
	n = w.resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		w.errorf(ErrInvalid, w.line(n), field, "want a string, got %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// strList reads a list of scalars; null is an empty list.
func (w *walker) strList(n *yaml.Node, field string) ([]string, bool) {
	items, ok := w.list(n, field)
	if !ok {
		return nil, false
	}
	var out []string
	for i, it := range items {
		s, ok := w.str(it, index(field, i))
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// list returns the items of a sequence node; null is an empty list.
func (w *walker) list(n *yaml.Node, field string) ([]*yaml.Node, bool) {
	n = w.resolve(n)
	if n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		w.errorf(ErrInvalid, w.line(n), field, "want a list, got %s", kindName(n))
		return nil, false
	}
	return n.Content, true
}

// integer reads a number, also when written as a string ("22").
func (w *walker) integer(n *yaml.Node, field string, lo, hi int) (int, bool) {
	s, ok := w.str(n, field)
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		w.errorf(ErrInvalid, w.line(n), field, "%q is not a number from %d to %d", s, lo, hi)
		return 0, false
	}
	return v, true
}

// boolean reads true or false (any case); null is false.
func (w *walker) boolean(n *yaml.Node, field string) (bool, bool) {
	s, ok := w.str(n, field)
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, true
	case "false", "":
		return false, true
	}
	w.errorf(ErrInvalid, w.line(n), field, "%q is not true or false", s)
	return false, false
}

// strMap reads a mapping of scalars.
func (w *walker) strMap(n *yaml.Node, field string) (map[string]string, bool) {
	pairs, ok := w.mapping(n, field)
	if !ok || len(pairs) == 0 {
		return nil, ok
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		v, ok := w.str(p.val, join(field, p.key))
		if !ok {
			return nil, false
		}
		out[p.key] = v
	}
	return out, true
}

// setStr returns a handler that stores a string.
func (w *walker) setStr(dst *string) handler {
	return func(v *yaml.Node, path string) {
		if s, ok := w.str(v, path); ok {
			*dst = s
		}
	}
}

// setList returns a handler that stores a list of strings.
func (w *walker) setList(dst *[]string) handler {
	return func(v *yaml.Node, path string) {
		if s, ok := w.strList(v, path); ok {
			*dst = s
		}
	}
}
