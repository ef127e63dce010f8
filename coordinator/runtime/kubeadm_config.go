package runtime

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/drove-project/drove/layers/render"
)

// kubeadm configuration kinds and their API group.
const (
	kubeadmGroup     = "kubeadm.k8s.io/"
	kindInit         = "InitConfiguration"
	kindClusterConf  = "ClusterConfiguration"
	kindJoin         = "JoinConfiguration"
	kubeadmConfigDir = "/etc/kubernetes"
	kubeadmInitFile  = kubeadmConfigDir + "/kubeadm-config.yaml"
)

// kubeadmSetup is the configuration kubeadm init gets, and what joins
// need from it.
type kubeadmSetup struct {
	config    []byte      // the YAML written on master0
	version   kubeVersion // the Kubernetes version installed
	criSocket string      // the nodes' CRI socket ("" lets kubeadm find it)
}

// buildKubeadmConfig merges the image's kubeadm config with the
// Clusterfile's kubeadm documents and sets what drove decides: the API
// version for the Kubernetes version, the endpoint, master0's address,
// the certificate SANs and the pod and service subnets from the env.
func buildKubeadmConfig(c *cluster, cri string) (kubeadmSetup, error) {
	var s kubeadmSetup
	inputs := append([][]byte{c.d.KubeadmDefault}, c.d.KubeadmDocs...)
	parsed := make([][]*yaml.Node, len(inputs))
	for i, in := range inputs {
		docs, err := decodeYAML(in)
		if err != nil {
			return s, fmt.Errorf("%w: kubeadm config %s: %w", ErrInvalid, inputName(i), err)
		}
		parsed[i] = docs
	}
	version := c.d.KubeVersion
	if version == "" {
		version = findKubernetesVersion(parsed)
	}
	if version == "" {
		return s, fmt.Errorf("%w: no Kubernetes version: the image has no KUBEVERSION and no ClusterConfiguration sets kubernetesVersion", ErrInvalid)
	}
	kv, err := parseKubeVersion(version)
	if err != nil {
		return s, fmt.Errorf("%w: KubeVersion: %w", ErrInvalid, err)
	}
	s.version = kv
	apiVersion := kubeadmAPIVersion(kv)
	// Bring every input to one API version first, so that an overlay
	// written for another version still merges into the image's document.
	normalized := make([][]byte, len(parsed))
	for i, docs := range parsed {
		for _, d := range docs {
			convertKubeadmDoc(d, apiVersion)
		}
		if normalized[i], err = render.EncodeDocuments(docs); err != nil {
			return s, fmt.Errorf("kubeadm config %s: %w", inputName(i), err)
		}
	}
	merged, err := render.MergeDocuments(normalized[0], normalized[1:]...)
	if err != nil {
		return s, fmt.Errorf("%w: merge kubeadm config: %w", ErrInvalid, err)
	}
	docs, err := decodeYAML(merged)
	if err != nil {
		return s, fmt.Errorf("kubeadm config: read merged documents: %w", err)
	}
	initDoc := findOrAdd(&docs, apiVersion, kindInit)
	clusterDoc := findOrAdd(&docs, apiVersion, kindClusterConf)

	endpoint := ensureMap(initDoc, "localAPIEndpoint")
	setScalar(endpoint, "advertiseAddress", c.master0.IP)
	if valueOf(endpoint, "bindPort") == nil {
		setInt(endpoint, "bindPort", apiServerPort)
	}
	reg := ensureMap(initDoc, "nodeRegistration")
	if sock := scalarOf(reg, "criSocket"); sock != "" {
		s.criSocket = sock
	} else if sock := defaultCRISocket(cri, kv); sock != "" {
		setScalar(reg, "criSocket", sock)
		s.criSocket = sock
	}

	setScalar(clusterDoc, "kubernetesVersion", kv.String())
	setScalar(clusterDoc, "controlPlaneEndpoint", hostPort(apiServerDomain, apiServerPort))
	apiServer := ensureMap(clusterDoc, "apiServer")
	sans := stringsOf(valueOf(apiServer, "certSANs"))
	vip := defaultVIP
	if v := c.d.Env["IPvsVIPv4"]; v != "" {
		vip = v
	}
	for _, want := range append(append([]string{apiServerDomain, "127.0.0.1", "localhost", vip}, c.masterIPs()...), c.d.CertSANs...) {
		if want != "" && !slices.Contains(sans, want) {
			sans = append(sans, want)
		}
	}
	setStrings(apiServer, "certSANs", sans)
	if pod, svc := c.d.Env["PodCIDR"], c.d.Env["SvcCIDR"]; pod != "" || svc != "" {
		net := ensureMap(clusterDoc, "networking")
		if pod != "" {
			setScalar(net, "podSubnet", pod)
		}
		if svc != "" {
			setScalar(net, "serviceSubnet", svc)
		}
	}
	if s.config, err = render.EncodeDocuments(docs); err != nil {
		return s, fmt.Errorf("kubeadm config: %w", err)
	}
	return s, nil
}

func inputName(i int) string {
	if i == 0 {
		return "from the image"
	}
	return fmt.Sprintf("document %d from the Clusterfile", i)
}

// defaultCRISocket is the CRI socket of the container runtimes drove
// knows; docker from 1.24 on goes through cri-dockerd.
func defaultCRISocket(cri string, kv kubeVersion) string {
	switch cri {
	case "containerd":
		return "unix:///run/containerd/containerd.sock"
	case "docker":
		if kv.less(kubeVersion{major: 1, minor: 24}) {
			return "/var/run/dockershim.sock"
		}
		return "unix:///var/run/cri-dockerd.sock"
	}
	return ""
}

// findKubernetesVersion is the last kubernetesVersion any input's
// ClusterConfiguration sets.
func findKubernetesVersion(inputs [][]*yaml.Node) string {
	v := ""
	for _, docs := range inputs {
		for _, d := range docs {
			if isKubeadm(d, kindClusterConf) {
				if s := scalarOf(d, "kubernetesVersion"); s != "" {
					v = s
				}
			}
		}
	}
	return v
}

// isKubeadm reports whether d is a kubeadm document of kind (any kind if
// kind is "").
func isKubeadm(d *yaml.Node, kind string) bool {
	return d.Kind == yaml.MappingNode && strings.HasPrefix(scalarOf(d, "apiVersion"), kubeadmGroup) &&
		(kind == "" || scalarOf(d, "kind") == kind)
}

// extraArgsPaths are the kubeadm fields that hold component flags: a
// mapping up to v1beta3, a list of {name, value} from v1beta4.
var extraArgsPaths = map[string][][]string{
	kindClusterConf: {
		{"apiServer", "extraArgs"}, {"controllerManager", "extraArgs"},
		{"scheduler", "extraArgs"}, {"etcd", "local", "extraArgs"},
	},
	kindInit: {{"nodeRegistration", "kubeletExtraArgs"}},
	kindJoin: {{"nodeRegistration", "kubeletExtraArgs"}},
}

// convertKubeadmDoc sets a kubeadm document's apiVersion and converts its
// flag fields to that version's form.
func convertKubeadmDoc(d *yaml.Node, apiVersion string) {
	if !isKubeadm(d, "") {
		return
	}
	setScalar(d, "apiVersion", apiVersion)
	list := apiVersion == kubeadmGroup+"v1beta4"
	for _, path := range extraArgsPaths[scalarOf(d, "kind")] {
		parent := d
		for _, k := range path[:len(path)-1] {
			if parent = valueOf(parent, k); parent == nil || parent.Kind != yaml.MappingNode {
				break
			}
		}
		if parent == nil || parent.Kind != yaml.MappingNode {
			continue
		}
		key := path[len(path)-1]
		args := valueOf(parent, key)
		switch {
		case args == nil:
		case list && args.Kind == yaml.MappingNode:
			seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for i := 0; i+1 < len(args.Content); i += 2 {
				item := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				setScalar(item, "name", args.Content[i].Value)
				setScalar(item, "value", args.Content[i+1].Value)
				seq.Content = append(seq.Content, item)
			}
			setNode(parent, key, seq)
		case !list && args.Kind == yaml.SequenceNode:
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for _, item := range args.Content {
				if item.Kind == yaml.MappingNode && scalarOf(item, "name") != "" {
					setScalar(m, scalarOf(item, "name"), scalarOf(item, "value"))
				}
			}
			setNode(parent, key, m)
		}
	}
}

// decodeYAML reads every non-empty document of data (the documents'
// content nodes, aliases expanded); each must be a mapping.
func decodeYAML(data []byte) ([]*yaml.Node, error) {
	docs, err := render.ParseDocuments(data)
	if err != nil {
		return nil, err
	}
	for i, d := range docs {
		if d.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("document %d (line %d): want a mapping", i+1, d.Line)
		}
	}
	return docs, nil
}

// findOrAdd is the first kubeadm document of kind, or a new one appended.
func findOrAdd(docs *[]*yaml.Node, apiVersion, kind string) *yaml.Node {
	for _, d := range *docs {
		if isKubeadm(d, kind) {
			return d
		}
	}
	d := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	setScalar(d, "apiVersion", apiVersion)
	setScalar(d, "kind", kind)
	*docs = append(*docs, d)
	return d
}

// valueOf is the value of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalarOf is the scalar value of key in m, or "".
func scalarOf(m *yaml.Node, key string) string {
	if v := valueOf(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// setNode sets key in mapping m to v, in place or appended.
func setNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func setScalar(m *yaml.Node, key, value string) {
	setNode(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

func setInt(m *yaml.Node, key, value string) {
	setNode(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: value})
}

func setStrings(m *yaml.Node, key string, values []string) {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, v := range values {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
	}
	setNode(m, key, seq)
}

// ensureMap is the mapping under key in m, made (or replacing a
// non-mapping) if need be.
func ensureMap(m *yaml.Node, key string) *yaml.Node {
	if v := valueOf(m, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	setNode(m, key, v)
	return v
}

// stringsOf reads a sequence of scalars.
func stringsOf(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode && !slices.Contains(out, c.Value) {
			out = append(out, c.Value)
		}
	}
	return out
}
