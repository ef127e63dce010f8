package render

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config processors (sealer's spec.process, joined with "|").
const (
	ProcessValue    = "value"    // the following processors work on each top-level value
	ProcessToJSON   = "toJson"   // YAML to JSON: the whole data, or each value to a JSON string
	ProcessToBase64 = "toBase64" // base64: the whole data, or each (string) value
	ProcessToSecret = "toSecret" // base64 each value into data: of the file's Secret
)

var processors = []string{ProcessValue, ProcessToJSON, ProcessToBase64, ProcessToSecret}

// pipeline is a parsed process list.
type pipeline struct {
	steps    []string // value, toJson, toBase64, in order
	toSecret bool     // applied last, against the existing file
}

// parsePipeline reads a process list. Entries may themselves hold
// "|"-joined names (sealer's form); empty names are skipped.
func parsePipeline(process []string) (pipeline, error) {
	var p pipeline
	for _, entry := range process {
		for name := range strings.SplitSeq(entry, "|") {
			name = strings.TrimSpace(name)
			switch {
			case name == "":
			case name == ProcessToSecret:
				p.toSecret = true
			case slices.Contains(processors, name):
				p.steps = append(p.steps, name)
			default:
				return pipeline{}, fmt.Errorf("spec.process: unknown processor %q (want %s)", name, strings.Join(processors, ", "))
			}
		}
	}
	return p, nil
}

// run applies the steps (not toSecret) to data, as sealer does: before
// "value" a step transforms the whole data; after it, each top-level value
// of the data mapping.
func (p pipeline) run(data []byte) ([]byte, error) {
	perValue := false
	for _, step := range p.steps {
		var err error
		switch {
		case step == ProcessValue:
			perValue = true
		case step == ProcessToJSON && !perValue:
			data, err = wholeToJSON(data)
		case step == ProcessToJSON:
			data, err = mapValues(data, valueToJSON)
		case step == ProcessToBase64 && !perValue:
			data = []byte(base64.StdEncoding.EncodeToString(data))
		case step == ProcessToBase64:
			data, err = mapValues(data, valueToBase64)
		}
		if err != nil {
			return nil, fmt.Errorf("spec.process %s: %w", step, err)
		}
	}
	return data, nil
}

// mapValues replaces each top-level value of the YAML mapping in data with
// the string f makes of it.
func mapValues(data []byte, f func(key string, v *yaml.Node) (string, error)) ([]byte, error) {
	m, err := dataMapping(data)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		s, err := f(m.Content[i].Value, m.Content[i+1])
		if err != nil {
			return nil, err
		}
		m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, LineComment: m.Content[i+1].LineComment}
	}
	return EncodeDocuments([]*yaml.Node{m})
}

// dataMapping parses data as one YAML document holding a mapping.
func dataMapping(data []byte) (*yaml.Node, error) {
	docs, err := ParseDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("spec.data: %w", err)
	}
	if len(docs) != 1 || docs[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("spec.data: want one YAML mapping of keys to values, found %s", describe(docs))
	}
	return docs[0], nil
}

func describe(docs []*yaml.Node) string {
	switch {
	case len(docs) == 0:
		return "no document"
	case len(docs) > 1:
		return fmt.Sprintf("%d documents", len(docs))
	}
	switch docs[0].Kind {
	case yaml.SequenceNode:
		return fmt.Sprintf("a sequence at line %d", docs[0].Line)
	case yaml.ScalarNode:
		return fmt.Sprintf("a scalar at line %d", docs[0].Line)
	}
	return fmt.Sprintf("a node at line %d", docs[0].Line)
}

// wholeToJSON is the first YAML document of data as JSON ("null" for
// none).
func wholeToJSON(data []byte) ([]byte, error) {
	docs, err := ParseDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("spec.data: %w", err)
	}
	if len(docs) == 0 {
		return []byte("null"), nil
	}
	return nodeJSON(docs[0])
}

// valueToJSON is v as a JSON text, as sealer's value|toJson makes it.
func valueToJSON(key string, v *yaml.Node) (string, error) {
	j, err := nodeJSON(v)
	if err != nil {
		return "", fmt.Errorf("key %q at line %d: %w", key, v.Line, err)
	}
	return string(j), nil
}

// nodeJSON is n as compact JSON with mapping keys sorted. Scalars resolve
// as YAML 1.2 (yaml.v3) does: "on", "y" and "n" stay strings.
func nodeJSON(n *yaml.Node) ([]byte, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode YAML: %w", err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("convert to JSON: %w", err)
	}
	return j, nil
}

// jsonable turns what yaml.v3 decodes into values encoding/json takes:
// mappings with non-string keys get their keys printed.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// valueToBase64 is the base64 of scalar v's text.
func valueToBase64(key string, v *yaml.Node) (string, error) {
	s, err := scalarText(key, v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

// scalarText is the text of a scalar value ("" for null); a mapping or a
// sequence is an error suggesting toJson.
func scalarText(key string, v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("key %q at line %d holds a mapping or sequence, not a string (put toJson before this step)", key, v.Line)
	}
	if isNull(v) {
		return "", nil
	}
	return v.Value, nil
}

// patchSecret sets, in the data: of every Secret document of file, each
// key of the mapping in values to the base64 of its value, keeping all else
// of the file.
func patchSecret(file, values []byte) ([]byte, error) {
	vm, err := dataMapping(values)
	if err != nil {
		return nil, fmt.Errorf("toSecret: %w", err)
	}
	docs, err := ParseDocuments(file)
	if err != nil {
		return nil, fmt.Errorf("toSecret: parse existing file: %w", err)
	}
	found := false
	for _, d := range docs {
		if d.Kind != yaml.MappingNode || scalarAt(d, "kind") != "Secret" {
			continue
		}
		found = true
		data := valueAt(d, "data")
		switch {
		case data == nil:
			data = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			d.Content = append(d.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "data"}, data)
		case isNull(data):
			*data = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: data.HeadComment, LineComment: data.LineComment}
		case data.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("toSecret: the Secret's data at line %d is not a mapping", data.Line)
		}
		for i := 0; i+1 < len(vm.Content); i += 2 {
			k := vm.Content[i]
			s, err := scalarText(k.Value, vm.Content[i+1])
			if err != nil {
				return nil, fmt.Errorf("toSecret: %w", err)
			}
			enc := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: base64.StdEncoding.EncodeToString([]byte(s))}
			if j := keyIndex(data, k); j >= 0 {
				data.Content[j+1] = enc
			} else {
				data.Content = append(data.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value}, enc)
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("toSecret: the file holds no document of kind Secret")
	}
	return EncodeDocuments(docs)
}
