// Package clusterfile reads Clusterfiles: the multi-document YAML files that
// describe a cluster for `drove run -f` and `drove apply -f`.
//
// It accepts what sealer accepts (see shared/reference/sealer.md §3–4):
//
//   - Cluster, in the v1 schema (sealer.aliyun.com/v1alpha1,
//     zlink.aliyun.com/v1alpha1, sealer.io/v1, sealer.io/v1alpha1) and the
//     v2 schema (sealer.cloud/v2, sealer.io/v2), plus drove's spec.runtime;
//   - Config (file patches) and Plugin (Gen-1 plugins and Gen-2 hooks) under
//     any of sealer's API groups;
//   - Application (sealer.io/v2);
//   - KubeadmConfig and every kubeadm.k8s.io, kubelet.config.k8s.io and
//     kubeproxy.config.k8s.io document, kept as raw YAML for the kubeadm
//     runtime.
//
// Everything is normalised into one model, File, whatever the schema. Parse
// reports every problem as an *Error naming FILE:LINE and the field (several
// are joined with errors.Join); unknown fields are not errors, as in sealer,
// but Warnings. Cloud machines (provider ALI_CLOUD or CONTAINER, hosts given
// as counts) are read and then refused with ErrUnsupported.
//
// FromFlags builds a Cluster from `drove run` flags, Cluster.Override lays
// flags over a Clusterfile, and File.Marshal writes the model back as a
// canonical sealer.io/v2 Clusterfile.
package clusterfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/drove-project/drove/protocol"
)

// MaxSize is the largest Clusterfile Parse and Load read, in bytes.
const MaxSize = 8 << 20

// File is a parsed Clusterfile.
type File struct {
	// Name is the name used in messages, as given to Parse.
	Name string
	// Cluster is the Cluster document; nil when the file has none.
	Cluster *Cluster
	// Application is the Application document, or nil.
	Application *Application
	// Configs are the Config documents in file order.
	Configs []protocol.ConfigFile
	// Plugins are the Plugin documents in file order.
	Plugins []Plugin
	// Kubeadm holds the KubeadmConfig, kubeadm, kubelet and kube-proxy
	// documents as written, in file order, for the kubeadm runtime to
	// merge over the image's defaults.
	Kubeadm []RawDoc
	// Warnings are findings that did not stop Parse, in file order.
	Warnings []Warning
}

// RawDoc is one document kept as YAML text.
type RawDoc struct {
	APIVersion string
	Kind       string
	Data       []byte // the document's text, without its "---" line
	Line       int    // the file line Data starts on
}

// Cluster apiVersions by schema.
var (
	clusterV1Versions = []string{"sealer.aliyun.com/v1alpha1", "zlink.aliyun.com/v1alpha1", "sealer.io/v1", "sealer.io/v1alpha1"}
	clusterV2Versions = []string{"sealer.io/v2", "sealer.cloud/v2"}
	kubeadmConfigVers = []string{"sealer.io/v2", "sealer.cloud/v2"}
	applicationVers   = []string{"sealer.io/v2"}
	// sealerGroups carry Config and Plugin in any version: sealer decodes
	// them by kind alone, and its own tests use several groups.
	sealerGroups = []string{"sealer.io", "sealer.cloud", "sealer.aliyun.com", "zlink.aliyun.com", "sealer.com"}
	// rawGroups are Kubernetes component configs kept as text.
	rawGroups = []string{"kubeadm.k8s.io", "kubelet.config.k8s.io", "kubeproxy.config.k8s.io"}
	versionRe = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)
)

// Load reads and parses the Clusterfile at path; path names it in messages.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open Clusterfile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Clusterfile %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse reads a Clusterfile; name is used in messages. On error the File is
// nil and the error is an *Error, or several joined; errors.Is matches the
// sentinel errors.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxSize), Err: ErrTooLarge}
	}
	d := &diags{file: name}
	p := &parser{f: &File{Name: name}, d: d, budget: maxNodes}
	for _, ch := range splitDocuments(data, d) {
		if d.full() || p.budget <= 0 {
			break
		}
		p.document(ch)
	}
	slices.SortStableFunc(d.warnings, func(a, b Warning) int { return a.Line - b.Line })
	p.f.Warnings = d.warnings
	if err := d.err(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// parser holds the state of one Parse call.
type parser struct {
	f         *File
	d         *diags
	budget    int
	clusterAt int // first line of the Cluster document, once read
	appAt     int // first line of the Application document, once read
}

var yamlLineRe = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// syntaxError reports a YAML error of the chunk that starts on line at.
func (p *parser) syntaxError(err error, at int) {
	msg := err.Error()
	line := at
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		line, msg = at+n-1, m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.d.errorf(ErrSyntax, line, "", "%s", msg)
}

// document reads one document.
func (p *parser) document(ch chunk) {
	errsBefore := len(p.d.errs)
	dec := yaml.NewDecoder(bytes.NewReader(ch.text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.syntaxError(err, ch.line)
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			p.syntaxError(err, ch.line)
		} else {
			p.d.errorf(ErrSyntax, ch.line-1+extra.Line, "", "unexpected document start")
		}
		return
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	w := &walker{diags: p.d, off: ch.line - 1, budget: &p.budget}
	root := w.resolve(doc.Content[0])
	if root == nil || isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		w.errorf(ErrInvalid, w.line(root), "", "want a mapping with apiVersion and kind, got %s", kindName(root))
		return
	}
	pairs, ok := w.mapping(root, "")
	if !ok {
		return
	}
	var apiVersion, kind string
	var avNode, kindNode *yaml.Node
	for _, kv := range pairs {
		switch kv.key {
		case "apiVersion":
			avNode = kv.val
			apiVersion, ok = w.str(kv.val, "apiVersion")
		case "kind":
			kindNode = kv.val
			kind, ok = w.str(kv.val, "kind")
		}
		if !ok {
			return
		}
	}
	line := w.line(root)
	if avNode == nil || apiVersion == "" {
		w.errorf(ErrInvalid, line, "apiVersion", "missing")
		return
	}
	if kindNode == nil || kind == "" {
		w.errorf(ErrInvalid, line, "kind", "missing")
		return
	}
	group, version, _ := strings.Cut(apiVersion, "/")
	switch {
	case slices.Contains(rawGroups, group) && versionRe.MatchString(version):
		p.f.Kubeadm = append(p.f.Kubeadm, rawDoc(apiVersion, kind, ch))
		return
	case kind == "KubeadmConfig":
		if !p.checkVersion(w, avNode, apiVersion, kind, kubeadmConfigVers) {
			return
		}
		p.f.Kubeadm = append(p.f.Kubeadm, rawDoc(apiVersion, kind, ch))
		return
	}

	var name string
	var spec *yaml.Node
	if _, ok := w.fields(root, "", map[string]handler{
		"apiVersion": nil,
		"kind":       nil,
		"status":     nil,
		"metadata": func(v *yaml.Node, path string) {
			meta, ok := w.mapping(v, path)
			if !ok {
				return
			}
			for _, kv := range meta {
				if kv.key == "name" {
					name, _ = w.str(kv.val, "metadata.name")
				}
			}
		},
		"spec": func(v *yaml.Node, path string) { spec = v },
	}); !ok {
		return
	}
	if spec == nil {
		spec = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: root.Line}
	}

	switch kind {
	case "Cluster":
		v1 := slices.Contains(clusterV1Versions, apiVersion)
		if !v1 && !p.checkVersion(w, avNode, apiVersion, kind, append(slices.Clone(clusterV2Versions), clusterV1Versions...)) {
			return
		}
		if p.clusterAt != 0 {
			w.errorf(ErrInvalid, w.line(kindNode), "kind", "a second Cluster document (the first starts at line %d): a Clusterfile describes one cluster", p.clusterAt)
			return
		}
		p.clusterAt = line
		r := newClusterReader(w, line)
		r.errsAtStart = errsBefore
		if v1 {
			r.specV1(spec, "spec")
		} else {
			r.specV2(spec, "spec")
		}
		if c := r.finish(); c != nil {
			c.Name = name
			p.f.Cluster = c
		}
	case "Config":
		if !p.checkGroup(w, avNode, apiVersion, kind) {
			return
		}
		if cf, ok := w.config(spec, "spec", line); ok {
			p.f.Configs = append(p.f.Configs, cf)
		}
	case "Plugin":
		if !p.checkGroup(w, avNode, apiVersion, kind) {
			return
		}
		pl := Plugin{Name: name, Line: line}
		if w.plugin(spec, "spec", &pl) {
			p.f.Plugins = append(p.f.Plugins, pl)
		}
	case "Application":
		if !p.checkVersion(w, avNode, apiVersion, kind, applicationVers) {
			return
		}
		if p.appAt != 0 {
			w.errorf(ErrInvalid, w.line(kindNode), "kind", "a second Application document (the first starts at line %d)", p.appAt)
			return
		}
		p.appAt = line
		app := &Application{Name: name, Line: line}
		w.application(spec, "spec", app)
		p.f.Application = app
	default:
		w.errorf(ErrUnknownKind, w.line(kindNode), "kind",
			"%q is not a kind drove reads: want Cluster, Config, Plugin, Application, KubeadmConfig, or a kubeadm.k8s.io, kubelet.config.k8s.io or kubeproxy.config.k8s.io document", kind)
	}
}

// rawDoc keeps a document's text, ending in a newline.
func rawDoc(apiVersion, kind string, ch chunk) RawDoc {
	data := bytes.Clone(ch.text)
	if !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	return RawDoc{APIVersion: apiVersion, Kind: kind, Data: data, Line: ch.line}
}

func (p *parser) checkVersion(w *walker, n *yaml.Node, apiVersion, kind string, want []string) bool {
	if slices.Contains(want, apiVersion) {
		return true
	}
	w.errorf(ErrUnknownKind, w.line(n), "apiVersion", "%q is not an apiVersion of kind %s: want %s", apiVersion, kind, strings.Join(want, ", "))
	return false
}

func (p *parser) checkGroup(w *walker, n *yaml.Node, apiVersion, kind string) bool {
	group, version, _ := strings.Cut(apiVersion, "/")
	if slices.Contains(sealerGroups, group) && versionRe.MatchString(version) {
		return true
	}
	w.errorf(ErrUnknownKind, w.line(n), "apiVersion", "%q is not an apiVersion of kind %s: want sealer.io/v1 (or another version of %s)", apiVersion, kind, strings.Join(sealerGroups, ", "))
	return false
}
